"""docker-compose.yml is checked against the settings the pipeline really reads (no Docker here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from flows.settings import build_settings, env_vars
from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS
from sinks.kafka_out import ALERTS_TOPIC, DEAD_LETTER_TOPIC
from sinks.store import StoreConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def test_services_are_all_there(compose: dict[str, Any]) -> None:
    assert {"kafka", "kafka-topics", "clickhouse", "grafana", "logisync", "simulator"} <= set(compose["services"])


def test_pipeline_environment_is_what_settings_read(compose: dict[str, Any]) -> None:
    env = {name: str(value) for name, value in compose["services"]["logisync"]["environment"].items()}
    known = {var for names in env_vars().values() for var in names}
    assert all(name in known or name.startswith("LOGISYNC_KAFKA__") for name in env), set(env) - known
    settings = build_settings(None, {}, environ=env)  # a variable that is no setting would be an error
    assert settings.source == "kafka"
    # Kafka: the bootstrap names the kafka service on a listener it declares.
    host, port = str(settings.bootstrap).split(":")
    assert host == "kafka"
    kafka_env = compose["services"]["kafka"]["environment"]
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{host}:{port}" in advertised
    assert f":{port}" in kafka_env["KAFKA_LISTENERS"]
    # ClickHouse: the DSN names the clickhouse service, its HTTP port and its user.
    store = StoreConfig(settings.clickhouse, settings.database)
    dsn = urlparse(store.dsn)
    ch = compose["services"]["clickhouse"]
    assert dsn.hostname == "clickhouse"
    assert f"{dsn.port}:{dsn.port}" in ch["ports"] and dsn.port == 8123
    credentials = (ch["environment"]["CLICKHOUSE_USER"], ch["environment"]["CLICKHOUSE_PASSWORD"])
    assert (dsn.username, dsn.password) == credentials
    assert settings.database == ch["environment"]["CLICKHOUSE_DB"]


def test_topics_created_are_the_topics_consumed_and_produced(compose: dict[str, Any]) -> None:
    script = compose["services"]["kafka-topics"]["command"][0]
    loop = re.search(r"for topic in (.*?); do", script, re.S)
    assert loop is not None
    created = set(loop.group(1).replace("\\", " ").split())
    assert created == set(DEFAULT_TOPIC_ADAPTERS) | {DEAD_LETTER_TOPIC, ALERTS_TOPIC}


def test_simulator_uses_the_same_bootstrap(compose: dict[str, Any]) -> None:
    sim = compose["services"]["simulator"]
    pipeline_env = compose["services"]["logisync"]["environment"]
    assert sim["environment"]["LOGISYNC_KAFKA_BOOTSTRAP"] == pipeline_env["LOGISYNC_KAFKA_BOOTSTRAP"]
    assert build_settings(None, {}, environ=sim["environment"]).bootstrap == "kafka:29092"
    assert sim["command"][:3] == ["logisync", "simulate", "--to-kafka"]


def test_grafana_datasource_points_at_the_clickhouse_service(compose: dict[str, Any]) -> None:
    path = REPO / "deploy/grafana/provisioning/datasources/clickhouse.yml"
    source = yaml.safe_load(path.read_text())["datasources"][0]
    ch = compose["services"]["clickhouse"]["environment"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert (source["jsonData"]["host"], source["jsonData"]["port"]) == ("clickhouse", 8123)
    assert source["jsonData"]["defaultDatabase"] == ch["CLICKHOUSE_DB"]
    assert source["jsonData"]["username"] == ch["CLICKHOUSE_USER"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in compose["services"]["grafana"]["volumes"]
    assert "grafana-clickhouse-datasource" in compose["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
