"""`models download` against a hub that lies (tests/hostile/hostile_hub.py, a real server on 127.0.0.1).

A mirror, a proxy or a hostile endpoint (HF_ENDPOINT) may redirect to file://, send the token's
request on to another host, name a file `../../x`, send a few bytes and hang, drop every connection,
announce sizes it does not have, or not be there at all. Each case: the exit code (2: the server or
the name is wrong; 3: the server cannot be reached or the disk is full), one line, nothing installed
and nothing written outside --out."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
from hostile_hub import HostileHub
from hostile_kit import cli, digest, refused, run_bounded

from tooncrafter_studio.setup import model_download as md

REPO = "Doubiiu/ToonCrafter"
PAYLOAD = os.urandom(300_000)
TOKEN = "hf_hostileTestToken0123456789"
MAX_BYTES = getattr(md, "MAX_DOWNLOAD_BYTES", 1 << 40)
MAX_REDIRECTS = getattr(md, "MAX_REDIRECTS", 5)


@pytest.fixture
def hub(monkeypatch):
    with HostileHub() as server:
        server.state.add(REPO, "model.ckpt", PAYLOAD)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


def _download(*extra) -> list:
    return ["-q", "models", "download", "--yes", *extra]


# -- where the bytes come from -------------------------------------------------------------------


def test_a_redirect_to_a_local_file_is_refused(hub, tmp_path, capsys):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"a local file the server wants installed as model.ckpt")
    sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    hub.state.add(REPO, "model.ckpt", secret.read_bytes())  # the hub announces the local file's checksum
    hub.state.resolve_to = lambda port, _sha: secret.as_uri()
    out = tmp_path / "models"
    refused(capsys, _download("--out", out), 2, ("file://", "only http(s)"), out, secret)
    assert sha == hashlib.sha256(secret.read_bytes()).hexdigest()


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1:1/model.ckpt", "data:,hello",
                                    "gopher://127.0.0.1:1/"])
def test_a_redirect_while_fetching_the_bytes_follows_http_only(hub, tmp_path, capsys, target):
    hub.state.resolve_to = lambda port, sha: f"http://127.0.0.1:{port}/bounce/{sha}"
    hub.state.bounce_to = lambda port, sha: target
    out = tmp_path / "models"
    err = refused(capsys, _download("--out", out), 2, ("only http(s)",), out / "model.ckpt")
    assert target.split(":")[0] in err
    assert not [s for s in hub.state.seen if s.path.startswith("/cdn/")]


def test_a_redirect_loop_is_bounded(hub, tmp_path, capsys):
    hub.state.resolve_to = lambda port, sha: f"http://127.0.0.1:{port}/bounce/{sha}"
    hub.state.bounce_to = lambda port, sha: f"http://localhost:{port}/bounce/{sha}?again"
    out = tmp_path / "models"
    refused(capsys, _download("--out", out), 2, ("redirected more than",), out / "model.ckpt")
    assert len([s for s in hub.state.seen if s.method == "GET"]) <= MAX_REDIRECTS + 2


# -- the token ----------------------------------------------------------------------------------


def test_the_token_never_follows_a_redirect_to_another_host(hub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # the hub's own address answers the GET with a redirect to another host (localhost vs 127.0.0.1)
    hub.state.resolve_to = lambda port, sha: f"http://127.0.0.1:{port}/bounce/{sha}"
    out = tmp_path / "models"
    code, _out, err = cli(capsys, *_download("--out", out))
    assert code == 0, err
    assert (out / "model.ckpt").read_bytes() == PAYLOAD
    cdn = [s for s in hub.state.seen if s.path.startswith("/cdn/")]
    assert cdn and all(s.host.startswith("localhost") for s in cdn)
    assert all(s.authorization is None for s in cdn), [s.authorization for s in cdn]
    assert hub.state.hosts_with_token() == {"127.0.0.1"}  # the hub itself did get it (it is the hub)


def test_the_token_is_not_sent_to_a_cdn_the_hub_names(hub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "models"
    assert cli(capsys, *_download("--out", out))[0] == 0
    assert "localhost" not in hub.state.hosts_with_token()


# -- the file name ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x.ckpt", "../model.ckpt", "/etc/x.ckpt", "sub/../../x.ckpt",
                                  "a\\..\\..\\x.ckpt", ".model.ckpt.part", "C:x.ckpt", "model.ckpt\x00.txt",
                                  "", "x" * 600])
def test_file_is_a_name_in_the_repository_never_a_path_out_of_out(hub, tmp_path, capsys, name):
    hub.state.add(REPO, name, PAYLOAD)  # the hub would serve it
    out = tmp_path / "a" / "b" / "models"
    refused(capsys, _download("--out", out, "--file", name), 2, ("--file",), tmp_path)
    assert not [s for s in hub.state.seen if s.method == "GET"]


def test_a_file_in_a_repository_folder_is_saved_under_its_name(hub, tmp_path, capsys):
    hub.state.add(REPO, "unet/weights.bin", PAYLOAD)
    out = tmp_path / "models"
    code, _out, err = cli(capsys, *_download("--out", out, "--file", "unet/weights.bin"))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["weights.bin"]
    assert not (tmp_path / "unet").exists()


# -- a server that stalls, drops or is not there ------------------------------------------------


@pytest.mark.parametrize("fault", ["drop", "hang", "dribble", "error500"])
def test_a_server_that_never_delivers_ends_the_download_with_the_partial_kept(hub, tmp_path, fault):
    hub.state.cdn = fault
    info = md.fetch_info(REPO, "model.ckpt")
    began = time.monotonic()
    with pytest.raises(md.OfflineError, match="What was fetched is kept") as stopped:
        run_bounded(lambda: md.download(info, tmp_path, timeout=1.0, stall_s=2.0, sleep=lambda s: None))
    assert stopped.value.resource  # exit 3: the service, not the input
    assert time.monotonic() - began < 200
    assert not (tmp_path / "model.ckpt").exists()
    if fault in ("drop", "hang", "dribble"):
        assert 0 < md.partial_bytes(info, tmp_path) < len(PAYLOAD)


def test_the_cli_stops_a_stalling_server_in_one_line_exit_3(hub, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(md, "STALL_S", 2.0, raising=False)
    monkeypatch.setattr(md, "READ_TIMEOUT_S", 1.0, raising=False)
    monkeypatch.setattr(md.time, "sleep", lambda s: None)
    hub.state.cdn = "dribble"
    out = tmp_path / "models"
    code, _out, err = run_bounded(lambda: cli(capsys, *_download("--out", out)))
    assert code == 3 and "no progress in 2 s" in err, err
    assert [line for line in err.splitlines() if line.startswith("error: ")] == err.strip().splitlines()[-1:]
    assert not (out / "model.ckpt").exists()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_hub_that_cannot_be_reached_is_exit_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    out = tmp_path / "models"
    refused(capsys, _download("--out", out), 3, ("Cannot reach", "offline"), out)


def test_an_endpoint_that_is_not_http_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"file://{tmp_path}")
    out = tmp_path / "models"
    refused(capsys, _download("--out", out), 2, ("HF_ENDPOINT", "only http(s)"), out)


# -- sizes and bytes the server lies about ------------------------------------------------------


def test_more_bytes_than_announced_installs_nothing(hub, tmp_path, capsys):
    hub.state.cdn = "extra"
    out = tmp_path / "models"
    refused(capsys, _download("--out", out), 2, ("more than",), out / "model.ckpt")


@pytest.mark.parametrize("size", ["9" * 400, str(MAX_BYTES + 1), "-5"])
def test_an_absurd_announced_size_is_refused_before_any_byte(hub, tmp_path, capsys, size):
    hub.state.size = size
    out = tmp_path / "models"
    code, _out, err = cli(capsys, *_download("--out", out))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not [s for s in hub.state.seen if s.method == "GET"]
    assert digest(out) == {str(out): "absent"}


def test_a_file_larger_than_the_free_space_is_a_full_disk_exit_3(hub, tmp_path, capsys):
    size = MAX_BYTES  # 1 TiB: allowed, and more than this disk has free
    if shutil.disk_usage(tmp_path).free > size:
        pytest.skip("this disk has more than 1 TiB free")
    hub.state.size = str(size)
    out = tmp_path / "models"
    out.mkdir()
    refused(capsys, _download("--out", out), 3, ("Not enough free disk space",), out)
    assert not [s for s in hub.state.seen if s.method == "GET"]


def _mount_tmpfs(folder: Path, size: str) -> bool:
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def test_the_disk_filling_during_the_download_is_exit_3_and_not_retried(hub, tmp_path, capsys, monkeypatch):
    import subprocess

    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "200k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        monkeypatch.setattr(md, "DISK_MARGIN", -(1 << 20))  # let it start: the space runs out on the way
        code, _out, err = cli(capsys, *_download("--out", disk))
        assert code == 3 and "disk filled" in err and "Traceback" not in err, err
        assert len([s for s in hub.state.seen if s.path.startswith("/cdn/")]) == 1  # not retried
        assert not (disk / "model.ckpt").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
