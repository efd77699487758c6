"""`models download`: size first, free-disk check, resume over ranges, checksum, against a local hub."""

from __future__ import annotations

import hashlib
import os

import pytest
from hub_server import COMMIT, HubServer
from local_net import closed_port_url

from tooncrafter_studio.core.errors import Cancelled, InputError
from tooncrafter_studio.core.progress import CancelToken
from tooncrafter_studio.setup import model_download as md

REPO = "Doubiiu/ToonCrafter"
PAYLOAD = os.urandom(3 * md.CHUNK + 12345)


@pytest.fixture
def hub(monkeypatch):
    with HubServer() as server:
        server.state.add(REPO, "model.ckpt", PAYLOAD)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


def test_info_comes_before_any_byte(hub):
    info = md.fetch_info(REPO, "model.ckpt")
    assert info.size == len(PAYLOAD) and info.commit == COMMIT
    assert info.checksum == hashlib.sha256(PAYLOAD).hexdigest() and info.checksum_kind == "sha256"
    assert info.url.startswith(hub.url.replace("127.0.0.1", "localhost") + "/cdn/")
    assert hub.state.ranges == []  # no GET of the bytes yet
    with pytest.raises(InputError, match="no file named nope.ckpt"):
        md.fetch_info(REPO, "nope.ckpt")
    with pytest.raises(InputError, match="does not exist"):
        md.fetch_info("someone/else", "model.ckpt")


def test_download_verifies_and_installs(hub, tmp_path):
    info = md.fetch_info(REPO, "model.ckpt")
    events = []
    path = md.download(info, tmp_path, events.append)
    assert path == tmp_path / "model.ckpt" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]  # no part files left
    downloads = [e for e in events if e.stage == "download"]
    assert downloads[-1].done == downloads[-1].total == len(PAYLOAD) and "MB of" in downloads[-1].message


def test_a_dropped_connection_resumes_with_a_range_request(hub, tmp_path):
    hub.state.drops = [md.CHUNK + 100]
    info = md.fetch_info(REPO, "model.ckpt")
    path = md.download(info, tmp_path, sleep=lambda s: None)
    assert path.read_bytes() == PAYLOAD
    assert hub.state.ranges == [None, f"bytes={md.CHUNK + 100}-"]


def test_pause_and_resume_across_restarts(hub, tmp_path):
    info = md.fetch_info(REPO, "model.ckpt")
    cancel = CancelToken()

    def pause_after_first_chunk(event):
        if event.stage == "download" and event.done >= md.CHUNK:
            cancel.cancel()

    with pytest.raises(Cancelled, match="paused"):
        md.download(info, tmp_path, pause_after_first_chunk, cancel)
    assert not (tmp_path / "model.ckpt").exists()
    paused = md.partial_bytes(info, tmp_path)  # bytes are written as they arrive: at least the first chunk
    assert md.CHUNK <= paused < len(PAYLOAD)
    # a new process: fresh metadata, same file -> continues from the partial
    again = md.fetch_info(REPO, "model.ckpt")
    assert md.download(again, tmp_path).read_bytes() == PAYLOAD
    assert hub.state.ranges[-1] == f"bytes={paused}-"


def test_a_server_that_ignores_ranges_restarts_from_zero(hub, tmp_path):
    info = md.fetch_info(REPO, "model.ckpt")
    hub.state.drops = [5000]
    hub.state.ignore_range = True
    assert md.download(info, tmp_path, sleep=lambda s: None).read_bytes() == PAYLOAD


def test_a_corrupt_byte_installs_nothing(hub, tmp_path):
    hub.state.corrupt_at = 2 * md.CHUNK + 7
    info = md.fetch_info(REPO, "model.ckpt")
    with pytest.raises(md.DownloadError, match="damaged.*nothing was installed"):
        md.download(info, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_partial_of_another_version_is_discarded(hub, tmp_path):
    info = md.fetch_info(REPO, "model.ckpt")
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        md.download(info, tmp_path, lambda e: e.stage == "download" and cancel.cancel(), cancel)
    new_payload = os.urandom(len(PAYLOAD))
    hub.state.add(REPO, "model.ckpt", new_payload)  # the repository changed the file meanwhile
    newer = md.fetch_info(REPO, "model.ckpt")
    assert md.partial_bytes(newer, tmp_path) == 0
    assert md.download(newer, tmp_path).read_bytes() == new_payload


def test_not_enough_disk_is_said_before_downloading(hub, tmp_path, monkeypatch):
    info = md.fetch_info(REPO, "model.ckpt")
    monkeypatch.setattr(md.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(md.DiskFullError, match="Not enough free disk space") as refused:
        md.download(info, tmp_path)
    assert refused.value.resource  # a full disk is exit 3, as everywhere
    assert hub.state.ranges == []


def test_an_unreachable_hub_is_offline(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    with pytest.raises(md.OfflineError, match="offline"):
        md.fetch_info(REPO, "model.ckpt", timeout=3)


def test_the_connection_lost_for_good_keeps_the_partial(hub, tmp_path):
    hub.state.drops = [md.CHUNK + 10] + [0] * md.RETRIES  # one try and RETRIES retries
    info = md.fetch_info(REPO, "model.ckpt")
    with pytest.raises(md.DownloadError, match="kept"):
        md.download(info, tmp_path, sleep=lambda s: None)
    assert md.partial_bytes(info, tmp_path) == md.CHUNK + 10
    assert hub.state.drops == []
    assert md.download(info, tmp_path).read_bytes() == PAYLOAD


def test_cli_download_asks_shows_the_size_and_is_idempotent(hub, tmp_path, capsys, monkeypatch):
    from tooncrafter_studio.cli.main import run_cli

    monkeypatch.setattr("sys.stdin", open(os.devnull))  # no terminal: it must not download unasked
    assert run_cli(["models", "download", "--out", str(tmp_path)]) == 2
    assert "add --yes" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    assert run_cli(["-q", "models", "download", "--out", str(tmp_path), "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"model.ckpt from {REPO} (commit {COMMIT[:10]}): 3.2 MB, sha256 " in out
    assert "downloaded and verified" in out and (tmp_path / "model.ckpt").read_bytes() == PAYLOAD
    gets = len(hub.state.ranges)
    assert run_cli(["models", "download", "--out", str(tmp_path), "--yes"]) == 0
    assert "already downloaded" in capsys.readouterr().out and len(hub.state.ranges) == gets


def test_convert_runs_in_the_engine_environment_when_torch_is_not_here(tmp_path, monkeypatch):
    import importlib.util
    import json
    import sys

    from tooncrafter_studio.setup import engine_env

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    assert md.convert_command(tmp_path / "model.ckpt", tmp_path / "x.safetensors") is None
    env_dir = tmp_path / "env"
    python = engine_env.env_python(env_dir)
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    (env_dir / engine_env.MARKER_FILE).write_text(json.dumps({"version": 1, "backend": "cpu", "variant": "cpu"}))
    monkeypatch.setenv(engine_env.ENV_DIR_ENV, str(env_dir))
    command = md.convert_command(tmp_path / "model.ckpt", tmp_path / "x.safetensors")
    assert command[0] == str(python) and command[1:3] == ["-m", "tooncrafter_studio"]
    assert command[4:6] == ["models", "convert"]
    with pytest.raises(Exception, match="engine install"):
        monkeypatch.delenv(engine_env.ENV_DIR_ENV)
        md.convert_download(tmp_path / "model.ckpt")
