"""The one frozen settings object, built once in the entry point (style.md).

Precedence: defaults < config file (TOML, `--config`) < environment (`LOGISYNC_*`) < CLI flags.
This is the only module that reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS
from sinks.store import DEFAULT_DATABASE, DEFAULT_DSN


class SettingsError(ValueError):
    """A bad setting; the message names the setting and the value."""


@dataclass(frozen=True)
class Settings:
    source: str = "simulator"  # simulator | file:PATH | kafka
    clickhouse: str = DEFAULT_DSN
    database: str = DEFAULT_DATABASE
    master_dir: Path | None = None
    workers: int = 1
    bootstrap: str | None = None
    until_end: bool = False
    batch_size: int = 2000
    epoch_interval_s: float = 10.0
    sink_max_rows: int = 50_000
    sink_flush_interval_s: float = 1.0
    dedup_ttl_days: float = 30.0
    recovery_dir: Path | None = None
    recovery_partitions: int = 4
    allowed_lateness_s: float = 300.0
    xref_ttl_days: float = 7.0
    retention_days: float = 30.0
    idle_timeout_s: float = 30.0
    alert_webhook: str | None = None
    alert_webhook_drain_s: float = 10.0  # at the end of a run, how long to wait for queued alert posts
    # [[handoffs]] tables of the config file (operators.domain.handoffs.parse_handoffs); empty = the defaults
    handoffs: tuple[Mapping[str, Any], ...] = ()
    # [inventory] table: tolerance, grace_minutes, and [inventory.sites.<site>] / [inventory.skus.<sku>]
    inventory: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    dead_letter_topic: str = "logisync.dead_letters"
    alerts_topic: str = "logisync.alerts"
    sim_seed: int = 7
    sim_deliveries: int = 300
    topic_adapters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_TOPIC_ADAPTERS)))
    # librdkafka settings passed through to consumers/producers (security.protocol, sasl.*, ssl.*).
    kafka_config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise SettingsError(f"workers must be >= 1, got {self.workers}")
        if self.batch_size < 1:
            raise SettingsError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.source in ("simulator", "kafka") or self.source.startswith("file:")):
            raise SettingsError(f"source must be 'simulator', 'kafka' or 'file:PATH', got {self.source!r}")
        if self.source == "kafka" and not self.bootstrap:
            raise SettingsError("source 'kafka' needs --bootstrap HOST:PORT (or LOGISYNC_KAFKA_BOOTSTRAP)")

    @property
    def replay_path(self) -> Path | None:
        return Path(self.source[len("file:") :]) if self.source.startswith("file:") else None

    def redacted_kafka_config(self) -> dict[str, str]:
        """Kafka settings safe to log: secrets replaced by ***."""
        return {
            key: ("***" if any(word in key for word in ("password", "secret", "token", "key")) else value)
            for key, value in self.kafka_config.items()
        }


# setting name -> environment variable (documented in the README's configuration table)
ENV_VARS: Mapping[str, str] = MappingProxyType(
    {
        "source": "LOGISYNC_SOURCE",
        "clickhouse": "LOGISYNC_CLICKHOUSE",
        "database": "LOGISYNC_DATABASE",
        "master_dir": "LOGISYNC_MASTER",
        "workers": "LOGISYNC_WORKERS",
        "bootstrap": "LOGISYNC_KAFKA_BOOTSTRAP",
        "batch_size": "LOGISYNC_BATCH_SIZE",
        "epoch_interval_s": "LOGISYNC_EPOCH_INTERVAL_S",
        "dedup_ttl_days": "LOGISYNC_DEDUP_TTL_DAYS",
        "allowed_lateness_s": "LOGISYNC_ALLOWED_LATENESS_S",
        "xref_ttl_days": "LOGISYNC_XREF_TTL_DAYS",
        "retention_days": "LOGISYNC_RETENTION_DAYS",
        "alert_webhook": "LOGISYNC_ALERT_WEBHOOK",
        "recovery_dir": "LOGISYNC_RECOVERY_DIR",
    }
)
KAFKA_ENV_PREFIX = "LOGISYNC_KAFKA__"  # LOGISYNC_KAFKA__SASL_PASSWORD -> sasl.password


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = str(kinds[name])
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if "Path" in kind:
            return None if value in (None, "") else Path(str(value))
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name}: cannot read {value!r} as {kind}") from exc
    return value


def from_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys, plus [topics] and [kafka] tables."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: {exc}") from exc
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key == "topics":
            values["topic_adapters"] = MappingProxyType({str(k): str(v) for k, v in value.items()})
        elif key == "kafka":
            values["kafka_config"] = MappingProxyType({str(k): str(v) for k, v in value.items()})
        elif key == "handoffs":
            if not isinstance(value, list):
                raise SettingsError(f"config file {path}: 'handoffs' must be an array of tables ([[handoffs]])")
            values["handoffs"] = tuple(value)
        elif key == "inventory":
            values["inventory"] = MappingProxyType(dict(value))
        elif key in known:
            values[key] = _coerce(key, value)
        else:
            raise SettingsError(f"config file {path}: unknown setting {key!r}")
    return values


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {name: _coerce(name, environ[var]) for name, var in ENV_VARS.items() if var in environ}
    kafka = {
        var[len(KAFKA_ENV_PREFIX) :].lower().replace("_", "."): value
        for var, value in environ.items()
        if var.startswith(KAFKA_ENV_PREFIX)
    }
    if kafka:
        values["kafka_config"] = MappingProxyType(kafka)
    return values


def build_settings(config_file: Path | None, cli_values: Mapping[str, Any]) -> Settings:
    """Defaults < config file < environment < CLI flags (flags that are None are not given)."""
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(from_file(config_file))
    merged.update(from_env(os.environ))
    merged.update({key: _coerce(key, value) for key, value in cli_values.items() if value is not None})
    kafka = dict(Settings().kafka_config)
    if "kafka_config" in merged:
        kafka.update(merged.pop("kafka_config"))
    try:
        return replace(Settings(kafka_config=MappingProxyType(kafka)), **merged)
    except TypeError as exc:
        raise SettingsError(str(exc)) from exc
