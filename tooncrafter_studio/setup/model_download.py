"""Download the ToonCrafter weights from the Hugging Face hub, only when the user asks.

    info = fetch_info("Doubiiu/ToonCrafter", "model.ckpt")   # size and checksum, before any byte
    path = download(info, user_models_dir(), progress, cancel)

huggingface_hub answers the metadata question (endpoint from HF_ENDPOINT, the user's token, the
hub's redirect and X-Linked-* headers). The bytes are fetched here rather than by
`hf_hub_download`, because the app needs what that function does not give: a cancel that stops within
a chunk and keeps the partial file (pause), progress through our callbacks, a free-disk check before
starting, resuming a partial file in the models folder after a restart, and the sha256 the hub
publishes checked before the file gets its name (hf_hub_download does not verify it).

A partial download is `.<name>.part` beside a `.<name>.part.json` that records which file it is
(repository, commit, size, checksum); a partial of another version is discarded. Only a complete file
with the published checksum is renamed to its real name, so a corrupt or cut-short download never
looks installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..core.errors import Cancelled, InputError, StudioError
from ..core.fsio import atomic_write_text, fsync_dir
from ..core.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from .engine_env import is_frozen, package_source_root, ready_env

log = logging.getLogger(__name__)

DEFAULT_REPO = "Doubiiu/ToonCrafter"
DEFAULT_FILE = "model.ckpt"
CONVERTED_NAME = "tooncrafter_512.safetensors"  # the first name core/paths.py looks for
CHUNK = 1 << 20
DISK_MARGIN = 256 << 20  # leave this much free besides the file
RETRIES = 3  # a dropped connection is resumed this many times before giving up


class DownloadError(StudioError):
    """A download that failed; the message says whether what was fetched so far is kept."""


class OfflineError(DownloadError):
    """The hub could not be reached."""


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str
    commit: str | None  # the revision the file was resolved at
    size: int
    checksum: str | None  # LFS sha256 (64 hex) or git blob sha1 (40 hex), as the hub publishes it
    url: str  # where the bytes are (the CDN location the hub redirects to)

    @property
    def checksum_kind(self) -> str | None:
        if self.checksum and re.fullmatch(r"[0-9a-f]{64}", self.checksum):
            return "sha256"
        if self.checksum and re.fullmatch(r"[0-9a-f]{40}", self.checksum):
            return "git-sha1"
        return None


def format_size(n: float, decimals: int = 1) -> str:
    """Bytes in decimal units (B, KB, MB, GB), as download sizes are usually given."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.{decimals}f} {unit}"
        n /= 1000
    return f"{n:.{decimals}f} GB"


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def fetch_info(repo: str = DEFAULT_REPO, filename: str = DEFAULT_FILE, revision: str = "main",
               endpoint: str | None = None, timeout: float = 20) -> RemoteFile:
    """What the hub says about a file: size, checksum, commit and where to get it. No bytes."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError
    except ImportError as exc:
        raise DownloadError("huggingface_hub is missing (pip install huggingface_hub).") from exc
    endpoint = endpoint or hub_endpoint()
    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
    except RepositoryNotFoundError as exc:
        raise InputError(f"The repository {repo} does not exist on {endpoint} (or it is private).") from exc
    except EntryNotFoundError as exc:
        raise InputError(f"{repo} has no file named {filename} at revision {revision}.") from exc
    except HfHubHTTPError as exc:
        raise DownloadError(f"The hub refused to describe {repo}/{filename}: {exc}") from exc
    except Exception as exc:  # httpx / OS network errors
        raise OfflineError(f"Cannot reach {endpoint} ({type(exc).__name__}: {exc}). Are you offline?") from exc
    if meta.size is None:
        raise DownloadError(f"The hub did not say how large {filename} is; refusing to download blind.")
    checksum = (meta.etag or "").strip('"').lower() or None
    return RemoteFile(repo, filename, meta.commit_hash, int(meta.size), checksum, meta.location)


# --------------------------------------------------------------------------------------------------


def _part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(f".{dest.name}.part"), dest.with_name(f".{dest.name}.part.json")


def partial_bytes(info: RemoteFile, dest_dir: Path) -> int:
    """Bytes of `info` already fetched into `dest_dir` by an earlier, interrupted download."""
    part, meta = _part_paths(Path(dest_dir) / info.filename)
    try:
        recorded = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    same = {k: recorded.get(k) for k in ("repo", "filename", "size", "checksum")} == \
        {"repo": info.repo, "filename": info.filename, "size": info.size, "checksum": info.checksum}
    if not same or not part.exists():
        return 0
    return min(part.stat().st_size, info.size)


def check_free_space(info: RemoteFile, dest_dir: Path) -> None:
    dest_dir.mkdir(parents=True, exist_ok=True)
    needed = info.size - partial_bytes(info, dest_dir) + DISK_MARGIN
    free = shutil.disk_usage(dest_dir).free
    if free < needed:
        raise InputError(f"Not enough free disk space in {dest_dir}: {info.filename} needs "
                         f"{format_size(needed)}, {format_size(free)} is free.")


class _Hasher:
    """The checksum the hub publishes, computed as the bytes arrive."""

    def __init__(self, info: RemoteFile) -> None:
        self.kind = info.checksum_kind
        if self.kind == "git-sha1":  # a file kept in git itself: sha1 of "blob <size>\0" + content
            self.digest = hashlib.sha1(f"blob {info.size}\0".encode())
        else:
            self.digest = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.digest.update(data)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _headers_for(url: str, start: int) -> dict[str, str]:
    headers = {"Accept-Encoding": "identity", "User-Agent": "tooncrafter-studio"}
    if start:
        headers["Range"] = f"bytes={start}-"
    if urlparse(url).netloc == urlparse(hub_endpoint()).netloc:  # the token only goes to the hub itself
        with contextlib.suppress(Exception):
            from huggingface_hub.utils import build_hf_headers

            auth = build_hf_headers().get("authorization")
            if auth:
                headers["authorization"] = auth
    return headers


def _content_start(response) -> int:
    """Where the body starts in the file: 0 for a plain 200, the range start for a 206."""
    if response.status != 206:
        return 0
    found = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if not found:
        raise DownloadError("The server sent a partial answer without saying which part.")
    return int(found.group(1))


def download(info: RemoteFile, dest_dir: str | os.PathLike, progress: ProgressCallback | None = None,
             cancel: CancelToken | None = None, timeout: float = 30,
             sleep: Callable[[float], None] = time.sleep) -> Path:
    """Fetch `info` into `dest_dir/<filename>`; resumes a partial download, verifies the checksum.

    Cancel pauses: the partial file stays and the next call continues it. A checksum mismatch
    deletes what was fetched; nothing is installed.
    """
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    dest_dir = Path(dest_dir)
    dest = dest_dir / info.filename
    check_free_space(info, dest_dir)
    part, meta = _part_paths(dest)
    have = partial_bytes(info, dest_dir)
    if have == 0:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        atomic_write_text(meta, json.dumps(asdict(info) | {"started": time.time()}), error=DownloadError)
    hasher = _Hasher(info)
    if have:  # the checksum covers the whole file: read back what is already here
        progress(ProgressEvent("verify", 0, have, "reading the part downloaded earlier"))
        with open(part, "rb") as handle:
            remaining = have
            while remaining:
                data = handle.read(min(CHUNK * 8, remaining))
                if not data:
                    break
                hasher.update(data)
                remaining -= len(data)
                cancel.raise_if_cancelled()
    started = time.monotonic()
    resumed_from = have
    failures = 0
    while have < info.size:
        cancel.raise_if_cancelled()
        try:
            request = urllib.request.Request(info.url, headers=_headers_for(info.url, have))
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https/http only
                start = _content_start(response)
                if start != have:  # the server ignored the range: start again from the first byte
                    log.info("The server sent the file from byte %d, not %d; restarting", start, have)
                    have, hasher, resumed_from = 0, _Hasher(info), 0
                with open(part, "r+b" if part.exists() else "wb") as out:
                    out.seek(have)
                    out.truncate()
                    while True:
                        data = response.read(CHUNK)
                        if not data:
                            break
                        if have + len(data) > info.size:
                            raise DownloadError(f"The server sent more than the {format_size(info.size)} announced.")
                        out.write(data)
                        hasher.update(data)
                        have += len(data)
                        failures = 0
                        rate = (have - resumed_from) / max(time.monotonic() - started, 1e-3)
                        eta = (info.size - have) / rate if rate > 0 else None
                        progress(ProgressEvent("download", have, info.size,
                                               f"{format_size(have)} of {format_size(info.size)}", eta,
                                               extra={"bytes_per_s": rate}))
                        if cancel.cancelled:
                            out.flush()
                            os.fsync(out.fileno())
                            raise Cancelled(f"Download paused at {format_size(have)} of {format_size(info.size)}; "
                                            "start it again to continue.")
                    out.flush()
                    os.fsync(out.fileno())
                if have < info.size:
                    raise ConnectionError("the connection closed before the end of the file")
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have >= info.size:
                break
            raise DownloadError(f"The download server answered {exc.code} {exc.reason}; what was fetched "
                                f"({format_size(have)}) is kept for the next try.") from exc
        except (OSError, http.client.HTTPException) as exc:  # URLError and dropped connections
            failures += 1
            if failures > RETRIES:
                kind = OfflineError if isinstance(exc, urllib.error.URLError) and have == resumed_from else DownloadError
                raise kind(f"The download stopped at {format_size(have)} of {format_size(info.size)} ({exc}). "
                           "What was fetched is kept: start the download again to continue.") from exc
            log.warning("Download interrupted at %d bytes (%s); resuming", have, exc)
            sleep(min(2.0 ** failures, 10.0))
    progress(ProgressEvent("verify", info.size, info.size, "checking the checksum"))
    digest = hasher.hexdigest()
    if info.checksum_kind is not None and digest != info.checksum:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()
        raise DownloadError(f"The downloaded {info.filename} is damaged: its {info.checksum_kind} is {digest[:16]}…, "
                            f"the hub publishes {info.checksum[:16]}…. It was deleted; nothing was installed. "  # type: ignore[index]
                            "Try again (a flaky connection or proxy can cause this).")
    if info.checksum_kind is None:
        log.warning("The hub published no checksum for %s; only its size was checked", info.filename)
    os.replace(part, dest)
    fsync_dir(dest_dir)
    with contextlib.suppress(FileNotFoundError):
        meta.unlink()
    return dest


# --------------------------------------------------------------------------------------------------
# After the download: the conversion to fp16 safetensors, in whichever Python has torch


def convert_command(source: Path, out: Path) -> list[str] | None:
    """How to run `models convert`: here when torch is importable, else in the engine environment."""
    import importlib.util

    args = ["-m", "tooncrafter_studio", "--quiet", "models", "convert", str(source), "--out", str(out),
            "--dtype", "fp16"]
    if not is_frozen() and importlib.util.find_spec("torch") is not None:
        return [sys.executable, *args]
    env = ready_env()
    return [str(env.python), *args] if env is not None else None


def convert_download(source: Path, delete_original: bool = False) -> Path:
    """Convert a downloaded checkpoint to fp16 safetensors beside it; the original is deleted only
    when asked and only after the conversion succeeded."""
    source = Path(source)
    out = source.with_name(CONVERTED_NAME)
    command = convert_command(source, out)
    if command is None:
        raise StudioError("Converting needs the ToonCrafter engine's torch: install the engine first "
                          f"(`tooncrafter-studio engine install`), then convert {source} to {out}.")
    environment = dict(os.environ, PYTHONPATH=str(package_source_root()))
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
    done = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=str(package_source_root()),
                          creationflags=flags)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise StudioError(f"The conversion failed ({last}); {source.name} is untouched.")
    if delete_original:
        source.unlink()
        log.info("Deleted %s after converting it to %s", source, out)
    return out
