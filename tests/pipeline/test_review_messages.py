"""Messages a user sees at integration points: one clean sentence each."""

from __future__ import annotations

import pytest

from tooncrafter_studio.core.errors import EngineUnavailable
from tooncrafter_studio.engines.base import ProbeResult
from tooncrafter_studio.engines.crossfade import CrossfadeEngine
from tooncrafter_studio.pipeline.runner import check_engine


class _Unavailable(CrossfadeEngine):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self._reason = reason

    def probe(self) -> ProbeResult:
        return ProbeResult(available=False, reason=self._reason)


@pytest.mark.parametrize("reason", ["No GPU here.", "No GPU here", "No GPU here (it takes hours)."])
def test_unavailable_engine_message_ends_with_one_full_stop(reason):
    with pytest.raises(EngineUnavailable) as info:
        check_engine(_Unavailable(reason))
    message = str(info.value)
    assert message.endswith(").") or message.endswith("here.")
    assert not message.endswith("..")
    assert reason.rstrip(".") in message


def test_keys_one_frame_apart_message_is_grammatical_and_gives_useful_advice():
    from tooncrafter_studio.core.errors import InputError
    from tooncrafter_studio.pipeline.jobs import plan_inbetweens
    from tooncrafter_studio.project.document import SegmentSettings

    with pytest.raises(InputError) as derived:
        plan_inbetweens(1, SegmentSettings(exposure=2))
    assert "1 frame apart" in str(derived.value)
    assert "Set a count" not in str(derived.value)  # no count fits in a 1-frame gap
    with pytest.raises(InputError) as hand:
        plan_inbetweens(1, SegmentSettings(), count=3)
    assert "1 frame apart" in str(hand.value) and "1 frames" not in str(hand.value)
    with pytest.raises(InputError) as single:
        plan_inbetweens(1, SegmentSettings(), count=1)
    assert str(single.value).startswith("1 in-between does not fit")


def test_export_counts_left_out_inbetweens_not_frames_on_twos(tmp_path, capsys):
    """Keys 8 frames apart on 2s: 3 pending in-betweens cover 6 frames; the summary must not say 3 frames."""
    import shutil

    from tooncrafter_studio.cli.main import run_cli
    from tooncrafter_studio.core.paths import resources_dir

    plates = tmp_path / "plates"
    shutil.copytree(resources_dir() / "sample_shot" / "frames", plates)
    shot = tmp_path / "shot01"
    first = sorted(plates.glob("*.png"))[0]
    assert run_cli(["-q", "new", str(shot), "--source", str(first), "--detect-holds"]) == 0
    assert run_cli(["-q", "keys", str(shot), "--frames", "1,9"]) == 0
    assert run_cli(["-q", "generate", str(shot), "--pair", "1:9", "--engine", "crossfade"]) == 0
    capsys.readouterr()
    assert run_cli(["-q", "export", str(shot), "--out", str(tmp_path / "out"), "--timing-sheet", "csv"]) == 0
    out = capsys.readouterr().out
    assert "3 in-between(s) rejected or not included" in out
    assert "3 frame(s)" not in out
