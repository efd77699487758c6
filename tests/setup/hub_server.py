"""A small HTTP server on 127.0.0.1 that serves files the way the Hugging Face hub does.

`/{repo}/resolve/{revision}/{file}` answers 302 to an absolute CDN address with the hub's headers
(X-Repo-Commit, X-Linked-Etag = the LFS sha256, X-Linked-Size); `/cdn/<sha256>` serves the bytes
with ETag and byte ranges. Faults on demand: drop the connection after N bytes (per request), flip a byte, ignore
Range headers.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from dataclasses import dataclass, field

COMMIT = "3e8a2c1f0b9d4e5a6c7b8d9e0f1a2b3c4d5e6f70"


@dataclass
class HubState:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    drops: list[int] = field(default_factory=list)  # each CDN GET cuts the connection after the next count
    corrupt_at: int | None = None  # flip the byte at this file offset when serving it
    ignore_range: bool = False
    ranges: list[str | None] = field(default_factory=list)  # Range header of each CDN GET
    heads: int = 0

    def add(self, repo: str, name: str, data: bytes) -> str:
        self.files[(repo, name)] = data
        return hashlib.sha256(data).hexdigest()

    def by_sha(self, sha: str) -> bytes | None:
        return next((d for d in self.files.values() if hashlib.sha256(d).hexdigest() == sha), None)


def _handler(state: HubState):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 2  # an idle keep-alive connection ends soon, so that closing the server joins its thread

        def log_message(self, *args):  # quiet
            pass

        def end_headers(self):
            # one request per connection: closing the server never waits on an idle keep-alive
            self.send_header("Connection", "close")
            self.close_connection = True
            super().end_headers()

        def _resolve(self, head: bool) -> None:
            found = re.match(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<name>.+)$", self.path)
            assert found
            repo, name = found["repo"], found["name"]
            if not any(r == repo for r, _ in state.files):
                self._empty(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
                return
            data = state.files.get((repo, name))
            if data is None:
                self._empty(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})
                return
            sha = hashlib.sha256(data).hexdigest()
            # another host name, as the hub's CDN is (huggingface_hub follows same-host redirects)
            port = self.server.server_address[1]
            self._empty(302, {"Location": f"http://localhost:{port}/cdn/{sha}?sig=abc",
                              "X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"',
                              "X-Linked-Size": str(len(data)), "ETag": '"0123456789abcdef0123456789abcdef01234567"'})

        def _empty(self, code: int, headers: dict[str, str]) -> None:
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _cdn(self, head: bool) -> None:
            sha = self.path.split("/cdn/", 1)[1].split("?", 1)[0]
            data = state.by_sha(sha)
            if data is None:
                self._empty(404, {})
                return
            if state.corrupt_at is not None:
                data = bytearray(data)
                data[state.corrupt_at] ^= 0xFF
                data = bytes(data)
            start = 0
            rng = self.headers.get("Range")
            if not head:
                state.ranges.append(rng)
            found = re.match(r"bytes=(\d+)-$", rng or "")
            if found and not state.ignore_range:
                start = int(found.group(1))
                if start >= len(data):
                    self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if head:
                return
            if state.drops and len(body) > state.drops[0]:
                self.wfile.write(body[:state.drops.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def do_HEAD(self):  # noqa: N802
            state.heads += 1
            (self._cdn if self.path.startswith("/cdn/") else self._resolve)(True)

        def do_GET(self):  # noqa: N802
            (self._cdn if self.path.startswith("/cdn/") else self._resolve)(False)

    return Handler


class HubServer:
    def __init__(self) -> None:
        self.state = HubState()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.httpd.daemon_threads = False  # server_close() waits for the request threads
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
