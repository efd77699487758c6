"""Download the ToonCrafter weights from the Hugging Face hub, only when the user asks.

    info = fetch_info("Doubiiu/ToonCrafter", "model.ckpt")   # size and checksum, before any byte
    path = download(info, user_models_dir(), progress, cancel)

huggingface_hub answers the metadata question (endpoint from HF_ENDPOINT, the user's token, the
hub's redirect and X-Linked-* headers); it follows only redirects that stay on the hub and sends the
token nowhere else. The bytes are fetched here rather than by `hf_hub_download`, because the app
needs what that function does not give: a cancel that stops within a chunk and keeps the partial
file (pause), progress through our callbacks, a free-disk check before starting, resuming a partial
file in the models folder after a restart, and the sha256 the hub publishes checked before the file
gets its name (hf_hub_download does not verify it).

A partial download is `.<name>.part` beside a `.<name>.part.json` that records which file it is
(repository, commit, size, checksum); a partial of another version is discarded. Only a complete file
with the published checksum is renamed to its real name, so a corrupt or cut-short download never
looks installed.

The server is outside text (a mirror or a proxy may lie):
- only http(s) addresses are fetched, and at most MAX_REDIRECTS redirects (the hub makes one, to its
  CDN); an https download is never sent on over plain http;
- the token goes only to the hub's own origin (scheme, host, port), as an "unredirected" header
  that urllib never carries across a redirect;
- `--file` may name a folder in the repository (`unet/x.safetensors`), but the file is saved under
  its last part only, a plain name checked like any file name: it never leads outside the folder;
- a dropped or stalling connection is resumed, but RETRIES attempts in a row that bring less than
  PROGRESS_BYTES, STALL_S without PROGRESS_BYTES, or MAX_ATTEMPTS connections in all end it;
- every size the server announces is bounded (MAX_DOWNLOAD_BYTES) before the disk is checked.

Exit codes (through the errors' `resource` flag): a server that cannot be reached, stalls, keeps
dropping the connection or answers 5xx/429, and a full disk, are 3 (the machine or a service); a
repository or file that does not exist, a bad name, a server that breaks the protocol (a redirect
to file://, more bytes than announced, a wrong checksum) are 2. What was fetched is kept for the next
try unless the bytes themselves were wrong.
"""

from __future__ import annotations

import contextlib
import errno
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
from urllib.parse import urljoin, urlparse

from ..core.errors import Cancelled, InputError, StudioError
from ..core.fsio import RESOURCE_ERRNOS, atomic_write_text, describe_os_error, fsync_dir, read_regular_file
from ..core.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from .engine_env import is_frozen, package_source_root, ready_env

log = logging.getLogger(__name__)

DEFAULT_REPO = "Doubiiu/ToonCrafter"
DEFAULT_FILE = "model.ckpt"
CONVERTED_NAME = "tooncrafter_512.safetensors"  # the first name core/paths.py looks for
CHUNK = 1 << 20
DISK_MARGIN = 256 << 20  # leave this much free besides the file
MAX_DOWNLOAD_BYTES = 1 << 40  # a size announced above this is not a model file
MAX_REDIRECTS = 5  # the hub redirects once (to its CDN); a longer chain is not the hub
RETRIES = 3  # attempts in a row that bring less than PROGRESS_BYTES before giving up
MAX_ATTEMPTS = 100  # connections for one download in all, however much each brings
PROGRESS_BYTES = 64 << 10  # what counts as progress
STALL_S = 60.0  # no PROGRESS_BYTES for this long: the server is stalling
READ_TIMEOUT_S = 30.0  # one wait for the server (connect, or the next bytes)
_NAME_OK = re.compile(r"[^\x00-\x1f\x7f/\\:*?\"<>|]{1,200}")
_REPO_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


class DownloadError(StudioError):
    """A download that failed; the message says whether what was fetched so far is kept."""


class OfflineError(DownloadError):
    """The hub or its download server could not be reached, stalled or kept dropping the connection."""

    resource = True


class DiskFullError(DownloadError):
    """Not enough free space for the file, or the disk filled while writing it."""

    resource = True


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str  # the path in the repository (folders allowed); saved as `local_name`
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

    @property
    def local_name(self) -> str:
        return local_file_name(self.filename)


def format_size(n: float, decimals: int = 1) -> str:
    """Bytes in decimal units (B, KB, MB, GB), as download sizes are usually given."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.{decimals}f} {unit}"
        n /= 1000
    return f"{n:.{decimals}f} GB"


def local_file_name(filename: str) -> str:
    """The name a repository file is saved under: its last part, a plain file name (InputError if
    the repository path is not one: '..', an absolute path, a drive, control characters)."""
    parts = filename.split("/")
    if not filename or len(filename) > 500 or any(p in ("", ".", "..") or not _NAME_OK.fullmatch(p) for p in parts) \
            or parts[-1].startswith(".") or parts[-1].endswith((" ", ".")):
        raise InputError(f"--file {filename[:120]!r} is not a file in a repository: give a name like model.ckpt "
                         "(or folder/name.safetensors), without '..', '\\', a drive or a leading '/' or '.'.")
    return parts[-1]


def check_repo_id(repo: str) -> str:
    if not _REPO_OK.fullmatch(repo) or ".." in repo:
        raise InputError(f"--repo {repo[:120]!r} is not a repository name: give OWNER/NAME, e.g. {DEFAULT_REPO}.")
    return repo


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def _origin(url: str) -> tuple[str, str, int]:
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port
    except ValueError:
        port = None
    return scheme, (parsed.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme, 0)


def _check_http(url: str, what: str) -> str:
    scheme = urlparse(url).scheme.lower()
    if scheme not in ("http", "https") or not urlparse(url).hostname:
        shown = url if len(url) <= 120 else url[:120] + "…"
        raise DownloadError(f"{what} pointed to {shown!r}; only http(s) addresses are followed. Nothing was "
                            "downloaded: check HF_ENDPOINT (a mirror or proxy that answers this is misconfigured "
                            "or hostile).")
    return url


def fetch_info(repo: str = DEFAULT_REPO, filename: str = DEFAULT_FILE, revision: str = "main",
               endpoint: str | None = None, timeout: float = 20) -> RemoteFile:
    """What the hub says about a file: size, checksum, commit and where to get it. No bytes."""
    check_repo_id(repo)
    local_file_name(filename)
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError
    except ImportError as exc:
        raise DownloadError("huggingface_hub is missing (pip install huggingface_hub).") from exc
    endpoint = endpoint or hub_endpoint()
    _check_http(endpoint, "HF_ENDPOINT")
    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
    except RepositoryNotFoundError as exc:
        raise InputError(f"The repository {repo} does not exist on {endpoint} (or it is private).") from exc
    except EntryNotFoundError as exc:
        raise InputError(f"{repo} has no file named {filename} at revision {revision[:80]}.") from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        kind = OfflineError if isinstance(status, int) and (status >= 500 or status == 429) else DownloadError
        raise kind(f"The hub refused to describe {repo}/{filename}: {_short(exc)}") from exc
    except Exception as exc:  # httpx / OS network errors
        raise OfflineError(f"Cannot reach {endpoint} ({type(exc).__name__}: {_short(exc)}). Are you offline?") from exc
    if meta.size is None:
        raise DownloadError(f"The hub did not say how large {filename} is; refusing to download blind.")
    size = int(meta.size)
    if not 0 <= size <= MAX_DOWNLOAD_BYTES:
        raise DownloadError(f"The hub says {filename} has {str(size)[:40]} bytes; refusing (the limit is "
                            f"{format_size(MAX_DOWNLOAD_BYTES)}).")
    location = _check_http(urljoin(url, meta.location or url), f"The hub's answer for {repo}/{filename}")
    checksum = (meta.etag or "").strip('"').lower()[:128] or None
    commit = str(meta.commit_hash)[:64] if meta.commit_hash else None
    return RemoteFile(repo, filename, commit, size, checksum, location)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"


# --------------------------------------------------------------------------------------------------


def _part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(f".{dest.name}.part"), dest.with_name(f".{dest.name}.part.json")


def partial_bytes(info: RemoteFile, dest_dir: Path) -> int:
    """Bytes of `info` already fetched into `dest_dir` by an earlier, interrupted download."""
    part, meta = _part_paths(Path(dest_dir) / info.local_name)
    try:
        recorded = json.loads(read_regular_file(meta, 1 << 16, DownloadError, "download record"))
    except (DownloadError, ValueError, RecursionError):
        return 0
    if not isinstance(recorded, dict):
        return 0
    same = {k: recorded.get(k) for k in ("repo", "filename", "size", "checksum")} == \
        {"repo": info.repo, "filename": info.filename, "size": info.size, "checksum": info.checksum}
    if not same or not part.is_file() or part.is_symlink():
        return 0
    return min(part.stat().st_size, info.size)


def check_free_space(info: RemoteFile, dest_dir: Path) -> None:
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dest_dir).free
    except OSError as exc:
        raise _write_error(dest_dir, exc) from None
    needed = info.size - partial_bytes(info, dest_dir) + DISK_MARGIN
    if free < needed:
        raise DiskFullError(f"Not enough free disk space in {dest_dir}: {info.local_name} needs "
                            f"{format_size(needed)}, {format_size(free)} is free.")


def _write_error(path: Path, exc: OSError) -> DownloadError:
    """A failed write into the models folder: a full disk is DiskFullError (exit 3), never a retry."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"The disk filled while downloading into {path}; what was fetched is kept. Free some "
                             "space and run the download again to continue.")
    error = DownloadError(describe_os_error(path, exc, "write"))
    error.resource = exc.errno in RESOURCE_ERRNOS
    return error


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


class _HubRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, as a hub makes them: http(s) only, no https -> http, a few hops.

    Headers added with `add_unredirected_header` (the token) are never carried to the next hop."""

    max_redirections = MAX_REDIRECTS
    max_repeats = 2

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location:  # checked before urllib's own test (which lets ftp: through)
            target = urljoin(req.full_url, location)
            _check_http(target, f"A redirect from {_origin(req.full_url)[1]}")
            if urlparse(req.full_url).scheme.lower() == "https" and urlparse(target).scheme.lower() == "http":
                raise DownloadError(f"The download server redirected from https to plain http ({target[:120]}); "
                                    "refused. Nothing was downloaded.")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener() -> urllib.request.OpenerDirector:
    """http(s) and proxies only: no file:, ftp: or data: handler exists to be talked into."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), urllib.request.HTTPHandler(),
                    urllib.request.HTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(), _HubRedirects(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _request(url: str, start: int) -> urllib.request.Request:
    request = urllib.request.Request(_check_http(url, "The download address"),
                                     headers={"Accept-Encoding": "identity", "User-Agent": "tooncrafter-studio"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    if _origin(url) == _origin(hub_endpoint()):  # the token goes to the hub itself, never to another host
        with contextlib.suppress(Exception):
            from huggingface_hub.utils import build_hf_headers

            auth = build_hf_headers().get("authorization")
            if auth:
                request.add_unredirected_header("Authorization", auth)
    return request


def _content_start(response) -> int:
    """Where the body starts in the file: 0 for a plain 200, the range start for a 206."""
    if response.status != 206:
        return 0
    found = re.match(r"bytes (\d{1,15})-", response.headers.get("Content-Range", ""))
    if not found:
        raise DownloadError("The server sent a partial answer without saying which part; nothing more was "
                            "downloaded (what was fetched is kept).")
    return int(found.group(1))


class _Progress:
    """Bytes received, and when they last grew by PROGRESS_BYTES: stalls are measured against it,
    across connections (a server that sends a few bytes and hangs up each time is stalling too)."""

    def __init__(self, stall_s: float) -> None:
        self.received = self.mark = 0
        self.at, self.stall_s = time.monotonic(), stall_s

    def add(self, count: int) -> None:
        self.received += count
        if self.received - self.mark >= PROGRESS_BYTES:
            self.mark, self.at = self.received, time.monotonic()

    def stalled(self) -> bool:
        return time.monotonic() - self.at > self.stall_s


class _Stalled(Exception):
    pass


def download(info: RemoteFile, dest_dir: str | os.PathLike, progress: ProgressCallback | None = None,
             cancel: CancelToken | None = None, timeout: float | None = None,
             sleep: Callable[[float], None] = time.sleep, stall_s: float | None = None) -> Path:
    """Fetch `info` into `dest_dir/<local name>`; resumes a partial download, verifies the checksum.

    Cancel pauses: the partial file stays and the next call continues it. A checksum mismatch
    deletes what was fetched; nothing is installed. `timeout` bounds each wait for the server,
    `stall_s` the time without progress (see the module docstring for the retry rules).
    """
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    timeout = READ_TIMEOUT_S if timeout is None else timeout
    stall_s = STALL_S if stall_s is None else stall_s
    dest_dir = Path(dest_dir)
    dest = dest_dir / info.local_name
    _check_http(info.url, "The download address")
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
    stalled_tries = attempts = 0
    opener = _opener()
    watch = _Progress(stall_s)
    while have < info.size:
        cancel.raise_if_cancelled()
        attempts += 1
        before = watch.received
        try:
            with opener.open(_request(info.url, have), timeout=min(timeout, stall_s)) as response:
                start = _content_start(response)
                if start != have:
                    if response.status == 206:  # a part we did not ask for
                        raise DownloadError(f"The server sent bytes from {start:,} when {have:,} were asked for; "
                                            "refused (what was fetched is kept).")
                    log.info("The server sent the whole file, not from byte %d; restarting", have)
                    have, hasher, resumed_from = 0, _Hasher(info), 0
                try:
                    out = open(part, "r+b" if part.exists() else "wb")  # noqa: SIM115 - closed below
                    out.seek(have)
                    out.truncate()
                except OSError as exc:
                    raise _write_error(part, exc) from None
                with out:
                    while True:
                        data = response.read1(CHUNK)
                        if not data:
                            break
                        if have + len(data) > info.size:
                            raise DownloadError(f"The server sent more than the {format_size(info.size)} announced; "
                                                "nothing was installed.")
                        try:
                            out.write(data)
                        except OSError as exc:
                            raise _write_error(part, exc) from None
                        hasher.update(data)
                        have += len(data)
                        watch.add(len(data))
                        rate = (have - resumed_from) / max(time.monotonic() - started, 1e-3)
                        eta = (info.size - have) / rate if rate > 0 else None
                        progress(ProgressEvent("download", have, info.size,
                                               f"{format_size(have)} of {format_size(info.size)}", eta,
                                               extra={"bytes_per_s": rate}))
                        if cancel.cancelled:
                            _flush(out, part)
                            raise Cancelled(f"Download paused at {format_size(have)} of {format_size(info.size)}; "
                                            "start it again to continue.")
                        if watch.stalled():
                            raise _Stalled()
                    _flush(out, part)
                if have < info.size:
                    raise ConnectionError("the connection closed before the end of the file")
        except urllib.error.HTTPError as exc:
            if exc.code in (301, 302, 303, 307, 308):
                raise DownloadError(f"The download server redirected more than {MAX_REDIRECTS} times (or in a "
                                    f"circle); refused. What was fetched ({format_size(have)}) is kept.") from None
            if exc.code < 500 and exc.code not in (408, 429):
                raise DownloadError(f"The download server answered {exc.code} {_short(exc.reason, 80)}; what was "
                                    f"fetched ({format_size(have)}) is kept for the next try.") from None
            failure: BaseException = exc  # the server is overloaded or failing: worth another try
        except _Stalled:
            failure = TimeoutError(f"less than {format_size(PROGRESS_BYTES)} in {stall_s:.0f} s")
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts and dropped connections
            failure = exc
        else:
            continue  # the whole file arrived
        stalled_tries = 0 if watch.received - before >= PROGRESS_BYTES else stalled_tries + 1
        if stalled_tries >= RETRIES or attempts >= MAX_ATTEMPTS or watch.stalled():
            why = (f"{attempts} connections" if attempts >= MAX_ATTEMPTS else
                   f"no progress in {stall_s:.0f} s" if watch.stalled() else f"{stalled_tries} tries without progress")
            raise OfflineError(f"The download stopped at {format_size(have)} of {format_size(info.size)} ({why}; "
                               f"{_short(failure, 160)}). What was fetched is kept: start the download again to "
                               "continue.") from None
        log.info("Download interrupted at %d bytes (%s); resuming", have, _short(failure, 160))
        sleep(min(2.0 ** stalled_tries, 10.0))
    progress(ProgressEvent("verify", info.size, info.size, "checking the checksum"))
    digest = hasher.hexdigest()
    if info.checksum_kind is not None and digest != info.checksum:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()
        raise DownloadError(f"The downloaded {info.local_name} is damaged: its {info.checksum_kind} is {digest[:16]}…, "
                            f"the hub publishes {info.checksum[:16]}…. It was deleted; nothing was installed. "  # type: ignore[index]
                            "Try again (a flaky connection or proxy can cause this).")
    if info.checksum_kind is None:
        log.warning("The hub published no checksum for %s; only its size was checked", info.filename)
    if not part.exists() and info.size == 0:  # an empty file never opened a part
        part.touch()
    os.replace(part, dest)
    fsync_dir(dest_dir)
    with contextlib.suppress(FileNotFoundError):
        meta.unlink()
    return dest


def _flush(out, part: Path) -> None:
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as exc:
        raise _write_error(part, exc) from None


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
