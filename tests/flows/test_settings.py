"""Settings: defaults < config file < environment < flags, and secrets stay out of logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.core_config import build_core_config
from flows.settings import Settings, SettingsError, build_settings, from_env, from_file


def test_precedence_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "logisync.toml"
    config.write_text('workers = 3\ndatabase = "from_file"\nbatch_size = 10\n[topics]\n"legacy.drop" = "sniff"\n')
    monkeypatch.setenv("LOGISYNC_DATABASE", "from_env")
    monkeypatch.setenv("LOGISYNC_BATCH_SIZE", "20")
    settings = build_settings(config, {"batch_size": 30, "workers": None})
    assert (settings.workers, settings.database, settings.batch_size) == (3, "from_env", 30)
    assert dict(settings.topic_adapters) == {"legacy.drop": "sniff"}


def test_kafka_settings_pass_through_and_secrets_are_redacted() -> None:
    values = from_env({"LOGISYNC_KAFKA__SASL_PASSWORD": "hunter2", "LOGISYNC_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"})
    settings = Settings(**values)
    assert dict(settings.kafka_config) == {"sasl.password": "hunter2", "security.protocol": "SASL_SSL"}
    assert settings.redacted_kafka_config() == {"sasl.password": "***", "security.protocol": "SASL_SSL"}


def test_bad_config_files_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("wrokers = 2\n")
    with pytest.raises(SettingsError, match="unknown setting 'wrokers'"):
        from_file(bad)
    bad.write_text("workers = 'many'\n")
    with pytest.raises(SettingsError, match="setting workers: cannot read 'many' as int"):
        from_file(bad)
    with pytest.raises(SettingsError, match="does not exist"):
        from_file(tmp_path / "missing.toml")


def test_inventory_and_handoff_sections_build_the_core_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "[inventory]\ntolerance = 1\ngrace_minutes = 30\n"
        '[inventory.sites."1020"]\ngrace_minutes = 1440\n'
        '[inventory.site_skus."1020/MAT-7"]\ntolerance = 5\n'
        '[[handoffs]]\nname = "ship_to_erp"\nfrom = ["SHIPMENT_DISPATCHED"]\nfrom_kinds = ["wms"]\n'
        'to = ["GOODS_ISSUE_POSTED"]\nto_kinds = ["erp"]\nfrom_time = "occurred_at"\nto_time = "recorded_at"\n'
        'sla = "30min"\n'
    )
    core = build_core_config(build_settings(config, {}))
    assert core.tolerance.for_position("1020", "MAT-7") == 5
    assert core.tolerance.for_position("1010", "MAT-7") == 1
    (handoff,) = core.handoffs
    assert (handoff.name, handoff.sla_ms) == ("ship_to_erp", 30 * 60_000)
    config.write_text("[inventory]\ntolerence = 1\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        build_core_config(build_settings(config, {}))
