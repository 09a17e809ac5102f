"""Running the web app: in the foreground (`logisync serve`) or beside a run (`run --serve`).

An embedded chDB store admits one process. `logisync serve` checks the store's lock first and
says in one line when another process (a running pipeline) holds it; `run --serve` shares the
pipeline's own client instead, in a background thread.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from sinks.store import StoreConfig, StoreError
from web.app import create_app

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
STARTUP_TIMEOUT_S = 15.0


class ServeError(RuntimeError):
    """The page cannot be served (bad address, port in use, store locked); one line."""


def parse_address(text: str) -> tuple[str, int]:
    """`[HOST:]PORT` -> (host, port); the host defaults to 127.0.0.1 (never all interfaces)."""
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ServeError(f"--serve expects [HOST:]PORT with a port from 0 to 65535, got {text!r}")
    return host, int(port_text)


def chdb_holder(store: StoreConfig) -> str | None:
    """Who holds an embedded store's lock, when another process does; None when it is free.

    ClickHouse flocks `<path>/status` for as long as an engine has the path open (a stale file
    left by a crash is not locked). Taking the lock shared and releasing it at once is harmless.
    """
    if not store.embedded or store.chdb_path == ":memory:":
        return None
    status = Path(store.chdb_path) / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        text = status.read_text(encoding="utf-8", errors="replace")
        pid = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("PID:")), "?")
        # this process's own engine (shared clients, see sinks.store.connect) is not a conflict
        return None if pid == str(os.getpid()) else f"process {pid}"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_not_locked(store: StoreConfig) -> None:
    holder = chdb_holder(store)
    if holder is not None:
        raise StoreError(
            f"the embedded store {store.chdb_path} is in use by {holder} (a running pipeline?): chDB admits one "
            "process; serve it from that run with `logisync run --serve [HOST:]PORT`, or stop the run first"
        )


def _config(client: Any, database: str, host: str, port: int, live: bool) -> uvicorn.Config:
    app = create_app(client, database, live=live)
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")


def serve_forever(client: Any, database: str, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C); uvicorn handles the signals."""
    server = uvicorn.Server(_config(client, database, host, port, live=False))
    server.run()
    if not server.started:
        raise ServeError(f"could not listen on {host}:{port} (in use, or not an address of this machine?)")


@dataclass
class BackgroundServer:
    """The web app on a daemon thread beside a running pipeline."""

    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    @property
    def address(self) -> tuple[str, int]:
        sockets = [sock for server in self.server.servers for sock in server.sockets]
        host, port = sockets[0].getsockname()[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_background(client: Any, database: str, host: str, port: int) -> BackgroundServer:
    """Start serving on a daemon thread and wait until it listens (port 0 picks a free one).

    uvicorn installs signal handlers only on the main thread, so Ctrl-C still stops the run.
    """
    server = uvicorn.Server(_config(client, database, host, port, live=True))
    thread = threading.Thread(target=server.run, name="logisync-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServeError(f"could not listen on {host}:{port} (in use, or not an address of this machine?)")
        time.sleep(0.05)  # polling the server's own started flag, bounded by the deadline
    return BackgroundServer(server, thread)
