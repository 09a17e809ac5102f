"""The command line: help on every command, one-line errors, and the commands themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main
from sinks.store import StoreConfig


@pytest.mark.parametrize("command", [[], ["run"], ["simulate"], ["query"]])
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: logisync" in capsys.readouterr().out


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The error line (after any progress lines); there is no traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    assert err and not any("Traceback" in line for line in err), err
    assert err[-1].startswith("logisync "), err
    return err[-1]


def test_missing_replay_file_is_one_line(capsys: pytest.CaptureFixture[str], chdb_dsn: str) -> None:
    assert main(["run", "--source", "file:/no/such.jsonl", "--clickhouse", chdb_dsn, "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith("logisync run: replay file /no/such.jsonl does not exist")


def test_unreachable_store_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "SELECT 1", "--clickhouse", "http://127.0.0.1:9"]) == 2
    assert one_line_error(capsys).startswith("logisync query: cannot reach ClickHouse at http://127.0.0.1:9")


def test_bad_source_and_bad_workers_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--source", "ftp://x"]) == 2
    assert "source must be 'simulator', 'kafka' or 'file:PATH'" in one_line_error(capsys)
    assert main(["run", "--workers", "0"]) == 2
    assert "workers must be >= 1, got 0" in one_line_error(capsys)
    assert main(["run", "--source", "kafka"]) == 2
    assert "needs --bootstrap" in one_line_error(capsys)


def test_malformed_master_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], chdb_dsn: str) -> None:
    (tmp_path / "products.csv").write_text("sku,gtin\nA,123\n")
    (tmp_path / "sites.csv").write_text("site,gln,epcis_location,edi_warehouse_id,timezone\n")
    replay = tmp_path / "r.jsonl"
    replay.write_text("")
    code = main(["run", "--source", f"file:{replay}", "--master", str(tmp_path), "--clickhouse", chdb_dsn, "--quiet"])
    assert code == 2
    assert "products.csv" in one_line_error(capsys)


def test_simulate_run_and_query(tmp_path: Path, store: StoreConfig, capsys: pytest.CaptureFixture[str]) -> None:
    replay, master = tmp_path / "s.jsonl", tmp_path / "master"
    assert main(["simulate", "--out", str(replay), "--master-out", str(master), "--deliveries", "20"]) == 0
    assert "messages to" in capsys.readouterr().out
    store_flags = ["--clickhouse", store.dsn, "--database", store.database]
    assert main(["run", "--source", f"file:{replay}", "--master", str(master), "--quiet", *store_flags]) == 0
    summary = capsys.readouterr().out
    assert "accounting raw_in = normalized + duplicates + dead + ignored: holds" in summary
    assert "synchronization latency" in summary and "inventory record accuracy" in summary
    sql = f"SELECT count() AS n FROM {store.database}.delivery_status FINAL"
    assert main(["query", sql, "--format", "tsv", *store_flags]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "20"]
    assert main(["query", "SELEC nonsense", *store_flags]) == 2
    assert one_line_error(capsys).startswith("logisync query: query failed:")
