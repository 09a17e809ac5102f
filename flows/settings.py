"""The one frozen settings object, built once in the entry point (style.md).

Precedence: defaults < config file (TOML, `--config`) < environment < command-line flags, merged
by `build_settings` (flows/settings_sources.py); tables merge key by key across sources. This is
the only module that reads the environment.

Adding a setting is one line in `Settings`: `processes: Count = 1`. Its TOML key is its name,
its environment variable is `LOGISYNC_PROCESSES` (derived), its range comes from its type
(`Count`, `Interval`, `Days`, ... in flows/setting_values.py), and a bad value is a one-line error
naming it. Add a row to the README's configuration table (a test checks that every setting has
one), and a flag in flows/cli.py if it needs one. An older name stays accepted with
`Field(validation_alias=AliasChoices("new", "old"))`.

Secrets (the ClickHouse DSN, the webhook URL, Kafka passwords, keys and tokens) are held as
`SecretStr`: `repr(settings)` and error messages show them masked; `clickhouse` and
`kafka_config` unwrap them for the clients that need the real values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from flows.setting_values import (
    TOPIC_NAME,
    Count,
    Days,
    Drain,
    Interval,
    KafkaTopic,
    Lateness,
    SecretUrl,
    bootstrap_servers,
    flatten_table,
    is_secret_kafka_key,
    librdkafka_value,
)
from flows.settings_sources import (
    Layer,
    SettingsError,
    env_layer,
    env_var_names,
    file_layer,
    flag_layer,
    merge,
    one_line,
    problems,
)
from operators.ingest.normalize import ADAPTERS, DEFAULT_TOPIC_ADAPTERS, NONE, SNIFF
from sinks.store import DEFAULT_DATABASE, DEFAULT_DSN, database_problem, dsn_problem
from sinks.urls import UrlError, parse_http_url

__all__ = ["ENV_PREFIX", "OFF", "SecretUrl", "Settings", "SettingsError", "build_settings", "env_vars"]

ENV_PREFIX = "LOGISYNC_"
OFF = "off"  # in [topics]: the topic is not consumed at all (unlike "none": consumed and dead-lettered)

# LOGISYNC_* variables of scripts/kafka-local, not settings of the pipeline.
_SCRIPT_VARS = (
    "LOGISYNC_KAFKA_HOME",
    "LOGISYNC_KAFKA_STATE",
    "LOGISYNC_KAFKA_START_TIMEOUT",
    "LOGISYNC_KAFKA_STOP_TIMEOUT",
    "LOGISYNC_KAFKA_HEAP",
    "LOGISYNC_KAFKA_WATCH_PID",
    "LOGISYNC_KAFKA_JAVA_OPTS",
    "LOGISYNC_KAFKA_CDS",
    "LOGISYNC_KAFKA_MAVEN_REPO",
)


class Settings(BaseSettings):
    """Every setting of a run. Frozen; `Settings(...)` takes exactly its arguments (no
    environment, no file: that is `build_settings`) and raises SettingsError on a bad value."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_prefix_target="all",  # aliases get the prefix too: alias "master" reads LOGISYNC_MASTER
        env_nested_delimiter="__",
        case_sensitive=False,
        frozen=True,
        extra="forbid",
        validate_by_name=False,  # a field is read under its alias choices only (they list the name)
        hide_input_in_errors=True,  # pydantic's own messages never quote a value (secrets)
    )

    source: str = "simulator"  # simulator | file:PATH | kafka
    clickhouse_dsn: SecretUrl = Field(SecretUrl(DEFAULT_DSN), validation_alias=AliasChoices("clickhouse"))
    database: str = DEFAULT_DATABASE
    master_dir: Path | None = Field(None, validation_alias=AliasChoices("master_dir", "master"))
    # An id the master cannot map: kept as UNMAPPED:<raw> with a warning, or a mapping_error dead letter.
    unmapped: Literal["warn", "dead_letter"] = "warn"
    workers: Annotated[int, Field(ge=1, le=256)] = 1
    processes: Annotated[int, Field(ge=1, le=64)] = 1  # bytewax processes on this machine (`--processes`)
    # One process of a cluster spread over machines: its index and every process's host:port.
    process_id: Annotated[int, Field(ge=0, le=1023)] | None = None
    addresses: str | None = None  # "host1:port;host2:port" (bytewax -a), the same list in every process
    run_id: str | None = None  # the same in every process of a cluster (default: a new one per run)
    buckets: Annotated[int, Field(ge=1, le=1024)] = 8  # keys per domain stage (>= total workers)
    bootstrap: str | None = Field(None, validation_alias=AliasChoices("bootstrap", "kafka_bootstrap"))
    until_end: bool = False
    batch_size: Count = 2000
    # At most this many messages per input partition in one bytewax epoch (a crash replays one).
    epoch_max_messages: Count = 20_000
    kafka_give_up_s: Interval = 120.0  # --until-end: stop with an error after the broker is away this long
    create_topics: bool = True  # Kafka: create the missing output topics (dead letters, alerts)
    # Pipeline-health alerts (operators/domain/health.py)
    feed_silent_factor: Annotated[float, Field(gt=1, le=1000, allow_inf_nan=False)] = 10.0
    feed_silent_min_minutes: Annotated[float, Field(ge=1, le=100_000, allow_inf_nan=False)] = 30.0
    dead_letter_rate_threshold: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.05
    dead_letter_rate_min_messages: Count = 20
    epoch_interval_s: Interval = 10.0
    sink_max_rows: Count = 50_000
    sink_flush_interval_s: Interval = 0.5  # live: rows wait at most this (+ a tick) before their insert
    dedup_ttl_days: Days = 30.0
    recovery_dir: Path | None = None
    recovery_partitions: Annotated[int, Field(ge=1, le=1024)] = 4
    allowed_lateness_s: Lateness = 300.0
    xref_ttl_days: Days = 7.0
    retention_days: Days = 30.0
    idle_timeout_s: Interval = 30.0
    alert_webhook: SecretUrl | None = None
    alert_webhook_drain_s: Drain = 10.0  # at the end of a run, how long to wait for queued alert posts
    # [[handoffs]] tables (operators.domain.handoffs.parse_handoffs); empty = the defaults
    handoffs: tuple[Mapping[str, Any], ...] = ()
    # [inventory] table: tolerance, grace_minutes, and [inventory.sites.<site>] / [inventory.skus.<sku>]
    inventory: Mapping[str, Any] = Field(default_factory=lambda: MappingProxyType({}))
    dead_letter_topic: KafkaTopic = "logisync.dead_letters"
    alerts_topic: KafkaTopic = "logisync.alerts"
    sim_seed: int = 7
    sim_deliveries: Annotated[int, Field(ge=1, le=1_000_000)] = 300
    # [topics] table: topic -> adapter. build_settings lays it over DEFAULT_TOPIC_ADAPTERS.
    topic_adapters: Mapping[str, str] = Field(
        default_factory=lambda: MappingProxyType(dict(DEFAULT_TOPIC_ADAPTERS)),
        validation_alias=AliasChoices("topics", "topic_adapters"),
    )
    # [kafka] table: librdkafka settings passed through to consumers and producers.
    kafka: Mapping[str, str | SecretStr] = Field(default_factory=lambda: MappingProxyType({}))

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            found = problems(exc, _is_secret_location)
            raise SettingsError(one_line(found), found) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the arguments: build_settings layers the file, the environment and the flags
        # itself, so that tables merge and misspelt names are errors (flows/settings_sources.py).
        return (init_settings,)

    # -- what the rest of the code reads ------------------------------------------------------

    @property
    def clickhouse(self) -> str:
        """The DSN with its password, for the ClickHouse client (StoreConfig redacts it for logs)."""
        return self.clickhouse_dsn.get_secret_value()

    @property
    def kafka_config(self) -> Mapping[str, str]:
        """The [kafka] table with secrets unwrapped: only for handing to librdkafka."""
        return MappingProxyType(
            {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in self.kafka.items()}
        )

    def redacted_kafka_config(self) -> dict[str, str]:
        """Kafka settings safe to log: secrets replaced by ***."""
        return {key: "***" if isinstance(value, SecretStr) else value for key, value in self.kafka.items()}

    @property
    def replay_path(self) -> Path | None:
        return Path(self.source[len("file:") :]) if self.source.startswith("file:") else None

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` (keyed by setting key), validated like any other Settings."""
        values: dict[str, Any] = {_key(name): getattr(self, name) for name in type(self).model_fields}
        values.update(changes)
        return type(self)(**values)

    def __getstate__(self) -> dict[Any, Any]:
        """A pickle of the settings (flows/cluster.py hands them to the processes it starts): the
        read-only tables go as dicts and come back read-only (`__setstate__`)."""
        state = super().__getstate__()
        state["__dict__"] = {name: _thawed(value) for name, value in state["__dict__"].items()}
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state["__dict__"] = {name: _frozen(value) for name, value in state["__dict__"].items()}
        super().__setstate__(state)

    # -- validation ---------------------------------------------------------------------------

    @field_validator("master_dir", "recovery_dir", "bootstrap", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value in ("simulator", "kafka") or (value.startswith("file:") and len(value) > len("file:")):
            return value
        raise ValueError(f"must be 'simulator', 'kafka' or 'file:PATH', got {value!r}")

    @field_validator("clickhouse_dsn", mode="before")
    @classmethod
    def _dsn(cls, value: Any) -> Any:
        dsn = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(dsn, str):
            problem = dsn_problem(dsn)
            if problem:
                raise ValueError(problem)
        return dsn

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        problem = database_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        return None if value is None else bootstrap_servers(value)

    @field_validator("alert_webhook", mode="before")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        url = value.get_secret_value() if isinstance(value, SecretStr) else value
        if url == "":
            return None
        if isinstance(url, str):
            try:
                parse_http_url(url, "alert_webhook")
            except UrlError as exc:
                raise ValueError(exc.problem) from None
        return url

    @field_validator("handoffs", mode="before")
    @classmethod
    def _handoffs(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or not all(isinstance(item, Mapping) for item in value):
            raise ValueError("must be an array of tables ([[handoffs]] in the config file)")
        return tuple(MappingProxyType(dict(item)) for item in value)

    @field_validator("inventory", "topic_adapters", mode="before")
    @classmethod
    def _is_table(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError("must be a table")
        return value

    @field_validator("inventory")
    @classmethod
    def _inventory(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        return MappingProxyType(dict(value))

    @field_validator("topic_adapters")
    @classmethod
    def _topics(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        known = (*sorted(ADAPTERS), SNIFF, NONE, OFF)
        for topic, adapter in value.items():
            if not TOPIC_NAME.match(topic):
                raise ValueError(f"has {topic!r}, which is not a Kafka topic name (letters, digits, . _ -)")
            if adapter not in known:
                raise ValueError(f"maps {topic!r} to {adapter!r}; known: {', '.join(known)}")
        return MappingProxyType({topic: adapter for topic, adapter in value.items() if adapter != OFF})

    @field_validator("kafka", mode="before")
    @classmethod
    def _kafka(cls, value: Any) -> Mapping[str, str | SecretStr]:
        if not isinstance(value, Mapping):
            raise ValueError("must be a table of librdkafka settings")
        table: dict[str, str | SecretStr] = {}
        for key, item in flatten_table(value).items():
            if key == "bootstrap.servers":
                raise ValueError("must not set bootstrap.servers: use the bootstrap setting (--bootstrap)")
            table[key] = librdkafka_value(key, item)
        return table

    @field_validator("kafka")
    @classmethod
    def _kafka_frozen(cls, value: Mapping[str, str | SecretStr]) -> Mapping[str, str | SecretStr]:
        return MappingProxyType(dict(value))

    @model_validator(mode="after")
    def _kafka_needs_bootstrap(self) -> Settings:
        if self.source == "kafka" and not self.bootstrap:
            raise ValueError("source 'kafka' needs --bootstrap HOST:PORT (or LOGISYNC_KAFKA_BOOTSTRAP)")
        return self


def _key(field_name: str) -> str:
    """The key a field is given under (its first alias choice, else its name)."""
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return field_name


def _is_secret_location(loc: tuple[Any, ...]) -> bool:
    """Whether the value at `loc` of a validation error may be a secret (and must not be shown)."""
    key = str(loc[0]) if loc else ""
    if key in ("clickhouse", "alert_webhook"):
        return True
    return key == "kafka" and (len(loc) < 2 or is_secret_kafka_key(str(loc[1])))


def _kafka_env_keys(layer: Layer) -> Layer:
    """LOGISYNC_KAFKA__SASL_PASSWORD arrives as `sasl_password`: librdkafka spells it sasl.password."""
    table = layer.values.get("kafka")
    if isinstance(table, Mapping):
        layer.values["kafka"] = {key.replace("_", "."): value for key, value in flatten_table(table).items()}
    return layer


def _flat_kafka(layer: Layer) -> Layer:
    """Kafka keys flattened in every source, so `sasl.password` merges with `[kafka.sasl]`."""
    table = layer.values.get("kafka")
    if isinstance(table, Mapping):
        layer.values["kafka"] = flatten_table(table)
    return layer


def env_vars() -> dict[str, tuple[str, ...]]:
    """Setting key -> the environment variables that set it (LOGISYNC_<NAME>, then older names)."""
    return env_var_names(Settings)


def _thawed(value: Any) -> Any:
    if isinstance(value, MappingProxyType):
        return {"__read_only__": dict(value)}
    if isinstance(value, tuple):
        return tuple(_thawed(item) for item in value)
    return value


def _frozen(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__read_only__"}:
        return MappingProxyType(value["__read_only__"])
    if isinstance(value, tuple):
        return tuple(_frozen(item) for item in value)
    return value


def build_settings(
    config_file: Path | None,
    cli_values: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults < config file < environment (`os.environ` unless given) < CLI flags (flags that
    are None were not given). Tables merge key by key; `[topics]` extends the default topic map."""
    defaults = Layer({"topics": dict(DEFAULT_TOPIC_ADAPTERS)}, {})
    layers = [defaults]
    if config_file is not None:
        layers.append(_flat_kafka(file_layer(Settings, config_file)))
    environment = os.environ if environ is None else environ
    env = env_layer(Settings, environment, tables=("kafka", "inventory"), not_settings=_SCRIPT_VARS)
    layers.append(_kafka_env_keys(env))
    layers.append(_flat_kafka(flag_layer(Settings, cli_values)))
    merged = merge(layers)
    try:
        return Settings(**merged.values)
    except SettingsError as exc:
        if not exc.problems:
            raise
        raise SettingsError(one_line(exc.problems, merged.origins), exc.problems) from None
