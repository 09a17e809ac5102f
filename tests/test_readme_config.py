"""The README's configuration table and example file are checked against the settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flows.settings import build_settings, env_vars
from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS

README = Path(__file__).resolve().parents[1] / "README.md"


def configuration_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Configuration") : text.index("\n## ", text.index("## Configuration") + 1)]


def table_rows() -> dict[str, list[str]]:
    """Setting key (the first backticked word of the first cell) -> the row's cells."""
    rows = {}
    for line in configuration_section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.match(r"`([a-z_]+)`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells
    return rows


@pytest.mark.parametrize(("key", "names"), sorted(env_vars().items()))
def test_every_setting_has_a_row_with_its_env_vars(key: str, names: tuple[str, ...]) -> None:
    row = table_rows().get(key)
    assert row is not None, f"README configuration table has no row for {key}"
    assert all(f"`{name}" in row[1] for name in names), (key, names, row[1])


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    assert set(table_rows()) <= set(env_vars())


def test_the_example_file_is_valid_and_does_what_it_says(tmp_path: Path) -> None:
    example = re.search(r"Example `logisync.toml`:\n\n```toml\n(.*?)```", configuration_section(), re.S)
    assert example is not None
    config = tmp_path / "logisync.toml"
    config.write_text(example.group(1))
    settings = build_settings(config, {}, environ={"LOGISYNC_KAFKA__SASL_PASSWORD": "from-env"})
    expected = {**DEFAULT_TOPIC_ADAPTERS, "partner.acme.edi": "x12", "legacy.drop": "sniff"}
    del expected["stock.snapshots"]
    assert dict(settings.topic_adapters) == expected
    assert settings.kafka_config["sasl.password"] == "from-env"
    assert settings.kafka_config["sasl.username"] == "logisync"
    assert [h["name"] for h in settings.handoffs] == ["ship_to_erp"]
    assert settings.workers == 2 and "secret" not in repr(settings)
