"""What the guards of issue 18 (items 1, 4, 5) cost, and what they save.

- A project whose write lock another process holds for good: seconds until `project_write_lock`
  gives up naming the holder (before: 120 s, then exit 2).
- `relink`'s bounded walk over a tree wider than its folder bound (30,000 folders): CPU seconds and
  where it stopped.
- `models download` from a local server: throughput and progress events of a 64 MiB file with the
  guarded fetch (http(s)-only opener, unredirected token, reads as data arrives, stall watch).

Times are wall seconds for waits (what the user sees) and CPU seconds (time.process_time) for work,
which a loaded machine distorts less.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

OLD_LOCK_WAIT_S = 120.0

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def _held_lock() -> None:
    from tooncrafter_studio.core.errors import ProjectLocked
    from tooncrafter_studio.project.locking import LOCK_FILE, project_write_lock

    if sys.platform == "win32":
        print("held write lock: skipped (flock)")
        return
    with tempfile.TemporaryDirectory() as folder:
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(Path(folder) / LOCK_FILE)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            began = time.perf_counter()
            try:
                with project_write_lock(folder):
                    pass
            except ProjectLocked as exc:
                message = str(exc)
            waited = time.perf_counter() - began
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(30)
    print(f"held write lock: refused after {waited:.1f} s wall (before: {OLD_LOCK_WAIT_S:.0f} s, "
          f"{OLD_LOCK_WAIT_S / waited:.0f}x sooner); names the holder: {f'process {holder.pid}' in message}")


def _relink_walk() -> None:
    from tooncrafter_studio.project import relink

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for i in range(150):
            for j in range(200):
                (root / f"a{i:03d}" / f"b{j:03d}").mkdir(parents=True)
        search = relink._Search(time.monotonic() + relink.SEARCH_SECONDS)
        cpu, wall = time.process_time(), time.perf_counter()
        found = relink._folders(root, search)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"relink walk over 30,150 folders: {len(found):,} folders, {search.entries:,} entries, stopped "
          f"{search.stopped or 'not at all'}; {cpu:.2f} s CPU, {wall:.2f} s wall")


def _hub(data: bytes) -> http.server.ThreadingHTTPServer:
    sha = hashlib.sha256(data).hexdigest()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, body: bool) -> None:
            if "/resolve/" in self.path:
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/cdn/{sha}")
                self.send_header("X-Repo-Commit", "0" * 40)
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):  # noqa: N802
            self._answer(False)

        def do_GET(self):  # noqa: N802
            self._answer(True)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _download() -> None:
    from tooncrafter_studio.setup import model_download as md

    data = os.urandom(64 << 20)
    server = _hub(data)
    previous = os.environ.get("HF_ENDPOINT")
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        info = md.fetch_info("Doubiiu/ToonCrafter", "model.ckpt")
        with tempfile.TemporaryDirectory() as folder:
            events: list = []
            cpu, wall = time.process_time(), time.perf_counter()
            md.download(info, folder, events.append)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        server.shutdown()
        server.server_close()
        if previous is None:
            os.environ.pop("HF_ENDPOINT", None)
        else:
            os.environ["HF_ENDPOINT"] = previous
    print(f"download of 64 MiB from 127.0.0.1: {64 / wall:.0f} MiB/s wall, {cpu:.2f} s CPU (hashing included), "
          f"{len(events)} progress events")


def run() -> None:
    _held_lock()
    _relink_walk()
    _download()


if __name__ == "__main__":
    run()
