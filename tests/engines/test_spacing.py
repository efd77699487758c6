"""In-between timing from count and spacing."""

from __future__ import annotations

import pytest

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.project.spacing import SPACINGS, inbetween_times


def test_linear_is_even():
    assert inbetween_times(3) == pytest.approx([0.25, 0.5, 0.75])
    assert inbetween_times(1, "linear") == pytest.approx([0.5])


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("count", [1, 2, 5, 24])
def test_times_increase_inside_open_interval(spacing, count):
    times = inbetween_times(count, spacing)
    assert len(times) == count
    assert all(0.0 < t < 1.0 for t in times)
    assert all(a < b for a, b in zip(times, times[1:]))


def test_ease_in_bunches_near_first_key():
    times = inbetween_times(5, "ease-in")
    steps = [b - a for a, b in zip([0.0, *times], [*times, 1.0])]
    assert steps[0] < steps[-1]
    assert all(a <= b + 1e-12 for a, b in zip(steps, steps[1:]))  # steps grow: slow start
    assert times[2] < 0.5


def test_ease_out_bunches_near_second_key():
    times = inbetween_times(5, "ease-out")
    steps = [b - a for a, b in zip([0.0, *times], [*times, 1.0])]
    assert steps[0] > steps[-1]
    assert times[2] > 0.5


def test_ease_in_out_is_symmetric_and_slow_at_both_ends():
    times = inbetween_times(5, "ease-in-out")
    assert times == pytest.approx([1.0 - t for t in reversed(times)])
    steps = [b - a for a, b in zip([0.0, *times], [*times, 1.0])]
    assert steps[0] < steps[3] and steps[-1] < steps[3]
    assert times[2] == pytest.approx(0.5)


def test_explicit_times_pass_through():
    assert inbetween_times(0, explicit=[0.1, 0.4, 0.9]) == [0.1, 0.4, 0.9]
    assert inbetween_times(2, explicit=[0.3, 0.6]) == [0.3, 0.6]


@pytest.mark.parametrize("bad", [[0.0, 0.5], [0.5, 1.0], [-0.1], [1.5], [0.6, 0.3], [0.4, 0.4], [], [float("nan")]])
def test_explicit_times_rejected(bad):
    with pytest.raises(InputError):
        inbetween_times(0, explicit=bad)


def test_explicit_count_mismatch_rejected():
    with pytest.raises(InputError, match="3 in-betweens"):
        inbetween_times(3, explicit=[0.5])


@pytest.mark.parametrize("count", [0, -1, 1001, 10**9])
def test_bad_counts_rejected(count):
    with pytest.raises(InputError):
        inbetween_times(count)


def test_limit_itself_accepted():
    assert len(inbetween_times(1000)) == 1000


def test_unknown_spacing_rejected():
    with pytest.raises(InputError, match="ease-in-out"):
        inbetween_times(3, "bouncy")
