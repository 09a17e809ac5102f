"""The command line: help on every command, one-line errors, and the commands themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main
from sinks.store import StoreConfig


@pytest.mark.parametrize(
    "command", [[], ["run"], ["simulate"], ["query"], ["serve"], ["dlq"], ["dlq", "list"], ["dlq", "replay"]]
)
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


def test_run_checks_the_store_settings_before_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--database", "bad-name", "--quiet"]) == 2
    assert one_line_error(capsys).startswith("logisync run: database must be a name of letters, digits and _")
    assert main(["run", "--clickhouse", "mysql://h", "--quiet"]) == 2
    assert "clickhouse must be chdb://PATH or http(s)://" in one_line_error(capsys)
    config = tmp_path / "c.toml"
    config.write_text("[inventory]\ntolerence = 1\n")
    assert main(["run", "--config", str(config), "--quiet"]) == 2
    assert "[inventory]: unknown setting(s) ['tolerence']" in one_line_error(capsys)
    assert not (tmp_path / "var").exists()  # nothing was simulated or written


def test_simulate_to_kafka_checks_settings_before_producing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on these ports: had it tried to produce, the error would be another one.
    assert main(["simulate", "--to-kafka", "--bootstrap", "127.0.0.1:99999"]) == 2
    assert one_line_error(capsys) == (
        "logisync simulate: bootstrap port '99999' of '127.0.0.1:99999' is not in 1..65535 (from the command line)"
    )
    monkeypatch.setenv("LOGISYNC_DATABASE", "bad-name")
    assert main(["simulate", "--to-kafka", "--bootstrap", "127.0.0.1:9"]) == 2
    assert "database must be a name" in one_line_error(capsys)
    monkeypatch.setenv("LOGISYNC_DATABASE", "ok")
    monkeypatch.setenv("LOGISYNC_DEDUP_TTL_DAYS", "nan")
    assert main(["simulate", "--to-kafka", "--bootstrap", "127.0.0.1:9"]) == 2
    assert one_line_error(capsys).endswith(
        "dedup_ttl_days must be a finite number, got 'nan' (from LOGISYNC_DEDUP_TTL_DAYS)"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--clickhouse", "ftp://ingest:hunter2@h", "--quiet"],
        ["run", "--clickhouse", "http://ingest:hunter2@h:99999", "--quiet"],
        ["query", "SELECT 1", "--clickhouse", "http://ingest:hunter2@127.0.0.1:9"],
    ],
)
def test_cli_error_lines_never_show_a_password(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", *argv]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "://" in err and "***@" in err, err


def test_secrets_in_the_environment_stay_out_of_cli_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    replay = tmp_path / "r.jsonl"
    replay.write_text("")
    monkeypatch.setenv("LOGISYNC_CLICKHOUSE", "http://ingest:hunter2@127.0.0.1:9")
    monkeypatch.setenv("LOGISYNC_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("LOGISYNC_ALERT_WEBHOOK", "https://u:hunter2@hooks.example/T0KEN")
    assert main(["-v", "run", "--source", f"file:{replay}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "logisync run: cannot reach ClickHouse at http://ingest:***@127.0.0.1:9" in err
    assert "hunter2" not in err and "T0KEN" not in err
    assert "hunter2" not in caplog.text and "T0KEN" not in caplog.text
