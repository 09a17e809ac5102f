"""Value types of settings: ranges, Kafka names and tables, URLs whose credentials are secret.

Pure checks with no knowledge of where a value came from; flows/settings.py puts them on fields.
A check raises ValueError with what is wrong and the value (masked when secret), without the
setting's name: the one-line error adds it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, SecretStr

from sinks.urls import is_secret_name, redact_url, valid_host_name

# Ranges. A value outside is a typo or a unit mistake (ms for s), never a deliberate choice.
Count = Annotated[int, Field(ge=1, le=10_000_000)]
Interval = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]  # seconds, up to a day
Lateness = Annotated[float, Field(ge=0, le=30 * 86_400, allow_inf_nan=False)]  # seconds, up to 30 days
Days = Annotated[float, Field(gt=0, le=3650, allow_inf_nan=False)]  # up to 10 years
Drain = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]  # seconds
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def _kafka_topic(name: str) -> str:
    if not TOPIC_NAME.match(name):
        raise ValueError(f"must be a Kafka topic name (up to 249 letters, digits, . _ -), got {name!r}")
    return name


KafkaTopic = Annotated[str, AfterValidator(_kafka_topic)]
# Kafka settings that hold secrets besides those named like one (password, secret, token, key).
_SECRET_KAFKA_KEYS = frozenset({"sasl.oauthbearer.config", "sasl.password", "ssl.key.password"})


class SecretUrl(SecretStr):
    """A URL whose user info, path or query may hold a secret: printed as scheme://[user:***@]host:port/…"""

    def _display(self) -> str:
        return redact_url(self.get_secret_value(), origin_only=True)


def is_secret_kafka_key(key: str) -> bool:
    return key in _SECRET_KAFKA_KEYS or is_secret_name(key)


def flatten_table(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"sasl": {"mechanism": "X"}}` (TOML dotted keys without quotes) -> `{"sasl.mechanism": "X"}`."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_table(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def librdkafka_value(key: str, value: Any) -> str | SecretStr:
    """librdkafka takes strings: booleans as true/false, numbers as written; secrets wrapped."""
    if isinstance(value, SecretStr):
        return value if is_secret_kafka_key(key) else value.get_secret_value()
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        raise ValueError(f"entry {key!r} must be a string, number or boolean")
    return SecretStr(text) if is_secret_kafka_key(key) else text


def bootstrap_servers(value: str) -> str:
    """`host:port[,host:port...]` with every port in 1..65535 (an optional `PROTOCOL://` each)."""
    servers = [server.strip() for server in value.split(",")]
    for server in servers:
        address = server.split("://", 1)[-1]
        host, colon, port = address.rpartition(":")
        if not colon or not host:
            raise ValueError(f"must be HOST:PORT[,HOST:PORT...], got {value!r}")
        bracketed = host.startswith("[") and host.endswith("]") and len(host) > 2
        if not bracketed and not valid_host_name(host):
            raise ValueError(f"has an invalid host {host!r} in {value!r}")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port!r} of {server!r} is not in 1..65535")
    return ",".join(servers)
