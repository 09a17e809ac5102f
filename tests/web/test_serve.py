"""`logisync serve` and `logisync run --serve`: addresses, the chDB lock, serving a real store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from flows.run import run_pipeline
from flows.settings import Settings
from flows.simulate import write_scenario
from sinks.store import StoreConfig
from web.server import ServeError, chdb_holder, parse_address

LOGISYNC = Path(sys.executable).with_name("logisync")
UP_TIMEOUT_S = 60.0


def test_parse_address_defaults_to_loopback() -> None:
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address(":9") == ("127.0.0.1", 9)
    assert parse_address("0.0.0.0:8081") == ("0.0.0.0", 8081)
    assert parse_address("[::1]:8082") == ("::1", 8082)
    for bad in ("http", "host:port", "70000"):
        with pytest.raises(ServeError, match="expects \\[HOST:\\]PORT"):
            parse_address(bad)


def test_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "--host" in out and "default 127.0.0.1" in out and "--port" in out


def test_serve_refuses_a_database_without_tables(chdb_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    # this process's own engine holds the session store: not a conflict, but the database is empty
    assert chdb_holder(StoreConfig(chdb_dsn)) is None
    assert main(["serve", "--clickhouse", chdb_dsn, "--database", "nothing_here"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("logisync serve: database nothing_here at") and "run `logisync run`" in err[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_up(url: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited {process.returncode}: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            time.sleep(0.2)  # not listening yet; bounded by the deadline
    raise AssertionError(f"{url} did not come up in {UP_TIMEOUT_S} s")


def test_serve_a_store_and_refuse_a_second_process(tmp_path: Path) -> None:
    """A real `logisync serve` process on a store another process built; a second one is refused."""
    replay, master, path = tmp_path / "s.jsonl", tmp_path / "master", tmp_path / "store"
    write_scenario(replay, master, seed=5, deliveries=20)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = [
        str(LOGISYNC),
        "run",
        "--source",
        f"file:{replay}",
        "--master",
        str(master),
        "--clickhouse",
        f"chdb://{path}",
    ]
    subprocess.run([*run, "--quiet"], check=True, capture_output=True, env=env, timeout=300)
    port = _free_port()
    serve = [str(LOGISYNC), "serve", "--clickhouse", f"chdb://{path}"]
    server = subprocess.Popen([*serve, "--port", str(port)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_up(f"http://127.0.0.1:{port}/api/clock", server)
        status, body = _get(f"http://127.0.0.1:{port}/api/query/pipeline_by_topic")
        assert status == 200
        assert sum(row[1] for row in json.loads(body)["rows"]) == sum(1 for _ in replay.open())
        assert _get(f"http://127.0.0.1:{port}/")[0] == 200
        second = subprocess.run(
            [*serve, "--port", str(_free_port())], check=False, capture_output=True, text=True, env=env, timeout=120
        )
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith(f"logisync serve: the embedded store {path} is in use by process {server.pid}")
        assert "logisync run --serve" in lines[0]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_run_serve_shares_the_pipelines_store(tmp_path: Path, store: StoreConfig) -> None:
    replay, master = tmp_path / "s.jsonl", tmp_path / "master"
    count = write_scenario(replay, master, seed=9, deliveries=20)
    settings = Settings(source=f"file:{replay}", clickhouse=store.dsn, database=store.database, master_dir=master)
    result = run_pipeline(settings, progress=False, serve=("127.0.0.1", 0))
    try:
        assert result.web is not None and result.web.url.startswith("http://127.0.0.1:")
        status, body = _get(result.web.url + "api/query/pipeline_status")
        assert status == 200
        answer = json.loads(body)
        (row,) = [dict(zip(answer["columns"], values, strict=True)) for values in answer["rows"]]
        assert (row["runs"], row["last_run"], row["raw_messages"]) == (1, result.run_id, count)
    finally:
        if result.web is not None:
            result.web.stop()
    assert not result.web.thread.is_alive()
