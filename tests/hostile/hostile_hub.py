"""A Hugging Face hub that lies: a real HTTP server on 127.0.0.1 (port 0) with faults on demand.

Routes, as the hub and its CDN answer them:
  /{owner}/{name}/resolve/{rev}/{file}   302 to `state.resolve_to(port, sha)` with X-Repo-Commit,
                                         X-Linked-Etag (sha256), X-Linked-Size (or `state.size`)
  /bounce/{sha}                          HEAD: 200 with the same headers; GET: 302 to `state.bounce_to`
                                         (a hub-origin address whose bytes are somewhere else)
  /cdn/{sha}                             the bytes, with Range; `state.cdn` picks a fault

Two host names reach the same server: 127.0.0.1 (the hub) and localhost (another host, as a CDN
is). Every request is recorded with its Host and Authorization headers. Handlers that hang wait on
`state.release`, which the fixture sets before the server closes.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Seen:
    method: str
    host: str
    path: str
    authorization: str | None
    range: str | None


@dataclass
class HubState:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    resolve_to: Callable[[int, str], str] = lambda port, sha: f"http://localhost:{port}/cdn/{sha}"
    bounce_to: Callable[[int, str], str] = lambda port, sha: f"http://localhost:{port}/cdn/{sha}"
    size: str | None = None  # X-Linked-Size as sent (a lie), else the real size
    cdn: str = "ok"  # ok | drop | dribble | hang | extra | error500
    drop_after: int = 10  # bytes each connection sends before it is cut ("drop") or stalls ("hang")
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def add(self, repo: str, name: str, data: bytes) -> str:
        self.files[(repo, name)] = data
        return hashlib.sha256(data).hexdigest()

    def by_sha(self, sha: str) -> bytes | None:
        return next((d for d in self.files.values() if hashlib.sha256(d).hexdigest() == sha), None)

    def hosts_with_token(self) -> set[str]:
        return {s.host.split(":")[0] for s in self.seen if s.authorization}


def _handler(state: HubState):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # a client that vanished does not hold the thread for ever

        def log_message(self, *args):
            pass

        def end_headers(self):
            self.send_header("Connection", "close")
            self.close_connection = True
            super().end_headers()

        def _record(self) -> None:
            state.seen.append(Seen(self.command, self.headers.get("Host", ""), self.path,
                                   self.headers.get("Authorization"), self.headers.get("Range")))

        def _empty(self, code: int, headers: dict[str, str]) -> None:
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _meta(self, data: bytes) -> dict[str, str]:
            sha = hashlib.sha256(data).hexdigest()
            return {"X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": state.size if state.size is not None else str(len(data)),
                    "ETag": f'"{sha}"'}

        def _resolve(self) -> None:
            found = re.match(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<name>.+)$", self.path)
            data = state.files.get((found["repo"], found["name"])) if found else None
            if data is None:
                self._empty(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})
                return
            sha = hashlib.sha256(data).hexdigest()
            port = self.server.server_address[1]
            self._empty(302, {"Location": state.resolve_to(port, sha), **self._meta(data)})

        def _bounce(self, head: bool) -> None:
            sha = self.path.split("/bounce/", 1)[1].split("?", 1)[0]
            data = state.by_sha(sha) or b""
            if head:
                self._empty(200, self._meta(data))
            else:
                self._empty(302, {"Location": state.bounce_to(self.server.server_address[1], sha)})

        def _wait(self, seconds: float) -> bool:
            """Hang (as a stalled server does) until released; False once released."""
            return not state.release.wait(seconds)

        def _cdn(self, head: bool) -> None:
            sha = self.path.split("/cdn/", 1)[1].split("?", 1)[0]
            data = state.by_sha(sha)
            if data is None:
                self._empty(404, {})
                return
            if state.cdn == "error500" and not head:
                self._empty(503, {"Retry-After": "0"})
                return
            start = 0
            found = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
            if found:
                start = int(found.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            extra = b"\0" * 4096 if state.cdn == "extra" else b""
            self.send_header("Content-Length", str(len(body) + len(extra)))
            self.end_headers()
            if head:
                return
            if state.cdn == "drop":
                self.wfile.write(body[:state.drop_after])
                return
            if state.cdn == "hang":
                self.wfile.write(body[:state.drop_after])
                self.wfile.flush()
                self._wait(3600)
                return
            if state.cdn == "dribble":  # a byte now and then: never a socket timeout, never progress
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    if not self._wait(0.05):
                        return
                return
            self.wfile.write(body + extra)

        def _route(self, head: bool) -> None:
            self._record()
            try:
                if self.path.startswith("/cdn/"):
                    self._cdn(head)
                elif self.path.startswith("/bounce/"):
                    self._bounce(head)
                else:
                    self._resolve()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_HEAD(self):  # noqa: N802
            self._route(True)

        def do_GET(self):  # noqa: N802
            self._route(False)

    return Handler


class HostileHub:
    def __init__(self) -> None:
        self.state = HubState()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.httpd.daemon_threads = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
