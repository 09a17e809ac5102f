"""`logisync run --processes N`: a bytewax cluster of N processes on this machine.

This process becomes process 0 (it migrates the store, reads the replay file or its share of the
Kafka partitions, prints progress and, with the embedded store, is the one writer); it starts
processes 1..N-1 as `python -m flows.cluster SETTINGS INDEX`, each with the same settings (handed
over in a private temporary file, since they may hold secrets) and the same run id, and waits for
them. Every process builds the same flow; bytewax connects them over loopback ports.

Several machines: run `logisync run --process-id I --addresses "h0:p;h1:p;..." --run-id R` on each
(README, "Processes and machines").
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from flows.run import ClusterPlace, RunResult, run_pipeline
from flows.settings import Settings

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """A process of the cluster failed; the message names it."""


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            sockets.append(listener)
        return [listener.getsockname()[1] for listener in sockets]
    finally:
        for listener in sockets:
            listener.close()


def run_local_cluster(settings: Settings, *, progress: bool = True, serve: tuple[str, int] | None = None) -> RunResult:
    processes = settings.processes
    addresses = tuple(f"127.0.0.1:{port}" for port in _free_ports(processes))
    run_id = settings.run_id or uuid.uuid4().hex[:12]
    shared = settings.replace(processes=1, run_id=run_id, addresses=";".join(addresses), process_id=0)
    handle, name = tempfile.mkstemp(prefix="logisync-cluster-", suffix=".settings")
    path = Path(name)
    children: list[subprocess.Popen[bytes]] = []
    try:
        with os.fdopen(handle, "wb") as out:  # mkstemp: readable by this user only
            pickle.dump(shared, out)
        for index in range(1, processes):
            command = [sys.executable, "-m", "flows.cluster", str(path), str(index)]
            children.append(subprocess.Popen(command))
        result = run_pipeline(shared, progress=progress, place=ClusterPlace(0, addresses), serve=serve)
        failed = [(index, child.wait()) for index, child in enumerate(children, start=1)]
        failed = [(index, code) for index, code in failed if code != 0]
        if failed:
            raise ClusterError(f"cluster process(es) failed: {', '.join(f'{i} (exit {c})' for i, c in failed)}")
        return result
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        path.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    path, index = Path(argv[0]), int(argv[1])
    with path.open("rb") as handle:
        settings: Settings = pickle.load(handle)
    addresses = tuple(address for address in (settings.addresses or "").split(";") if address)
    run_pipeline(settings, progress=False, place=ClusterPlace(index, addresses))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main(sys.argv[1:]))
