"""Addresses on this machine for tests that need a server to be absent: never a fixed port number
(something may listen on any fixed port of a shared machine)."""

from __future__ import annotations

import socket


def closed_port_url() -> str:
    """http://127.0.0.1:PORT where nothing listens: a port the system just handed out and took back."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
