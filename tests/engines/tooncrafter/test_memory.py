import pytest

from tooncrafter_studio.core.errors import InputError, OutOfMemory
from tooncrafter_studio.diffusion.run.memory import (
    MODES,
    GiB,
    choose_mode,
    estimate_peak_bytes,
    is_out_of_memory,
    lower_mode,
    run_with_oom_retry,
)


def test_estimates_order_and_goals():
    high, balanced, low = (estimate_peak_bytes(m) for m in MODES)
    assert high > balanced > low
    assert estimate_peak_bytes("balanced", "fp32") > balanced


@pytest.mark.parametrize("expected", MODES)
@pytest.mark.parametrize("slack_fraction", [0.0, 0.5])
def test_auto_picks_the_fastest_mode_that_fits(expected, slack_fraction):
    estimates = [estimate_peak_bytes(m) for m in MODES]
    gap = min(a - b for a, b in zip(estimates, estimates[1:]))
    free = estimate_peak_bytes(expected) + int(slack_fraction * gap)
    choice = choose_mode("auto", free)
    assert choice.mode == expected
    assert choice.needed_bytes <= free
    # Every faster mode would not have fitted.
    for faster in MODES[: MODES.index(expected)]:
        assert estimate_peak_bytes(faster) > free


def test_auto_on_typical_cards():
    assert choose_mode("auto", 23 * GiB).mode == "high"  # a 24 GB card with the desktop running
    assert choose_mode("auto", int(7.5 * GiB)).mode in ("balanced", "low")  # an 8 GB card


def test_auto_refuses_when_nothing_fits():
    with pytest.raises(OutOfMemory, match="low memory mode.*1.0 GB is free"):
        choose_mode("auto", 1 * GiB)


def test_explicit_mode_that_does_not_fit_names_one_that_does():
    free = estimate_peak_bytes("balanced") + 1
    with pytest.raises(OutOfMemory, match="balanced mode would fit"):
        choose_mode("high", free)
    assert choose_mode("balanced", free).mode == "balanced"


def test_unknown_free_memory_and_bad_names():
    assert choose_mode("auto", None).mode == "high"
    assert choose_mode("low", None).mode == "low"
    with pytest.raises(InputError):
        choose_mode("tiny", GiB)
    with pytest.raises(InputError):
        choose_mode("auto", GiB, dtype="int8")


def test_lower_mode_chain():
    assert [lower_mode(m) for m in MODES] == ["balanced", "low", None]


class FakeCudaOOM(RuntimeError):
    pass


FakeCudaOOM.__name__ = "OutOfMemoryError"


class FakePipeline:
    """Runs out of memory in the modes listed in `fails_in`."""

    def __init__(self, fails_in):
        self.fails_in = set(fails_in)
        self.calls = []

    def __call__(self, mode):
        self.calls.append(mode)
        if mode in self.fails_in:
            raise FakeCudaOOM("CUDA out of memory. Tried to allocate 2.50 GiB")
        return f"frames made in {mode}"


def test_oom_retries_once_in_the_next_lower_mode():
    pipe = FakePipeline({"high"})
    retries = []
    assert run_with_oom_retry(pipe, "high", on_retry=lambda a, b: retries.append((a, b))) == "frames made in balanced"
    assert pipe.calls == ["high", "balanced"]
    assert retries == [("high", "balanced")]


def test_oom_twice_reports_mode_and_memory_needed():
    pipe = FakePipeline({"high", "balanced", "low"})
    with pytest.raises(OutOfMemory) as info:
        run_with_oom_retry(pipe, "high", free_bytes=lambda: 3 * GiB)
    assert pipe.calls == ["high", "balanced"]  # once, not all the way down
    message = str(info.value)
    assert "balanced memory mode" in message and "3.0 GB is free" in message and "low memory mode" in message
    assert f"{estimate_peak_bytes('balanced') / GiB:.1f} GB" in message


def test_oom_in_low_mode_has_nowhere_to_go():
    pipe = FakePipeline({"low"})
    with pytest.raises(OutOfMemory, match="low memory mode"):
        run_with_oom_retry(pipe, "low")
    assert pipe.calls == ["low"]


def test_other_errors_pass_through():
    def broken(mode):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        run_with_oom_retry(broken, "high")
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(OutOfMemory("ours"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
