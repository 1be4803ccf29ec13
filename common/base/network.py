"""Loopback ports for the servers a run starts itself (a local LLM server, a SuperLink, a Ray head)."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now: held open together, so none is handed out twice.

    Another program may take one before it is used: bind soon after.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def free_port() -> int:
    """One TCP port free on 127.0.0.1 now."""
    return free_ports(1)[0]
