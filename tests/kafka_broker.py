"""pytest plugin: one real Apache Kafka broker per test session, fresh topics per test.

The broker is `scripts/kafka-local` (Kafka 4.x from Maven Central jars, KRaft, 127.0.0.1 only) with
its own state dir under pytest's tmp path, so it never touches a developer's own broker; the jar
cache (`$LOGISYNC_KAFKA_HOME` or `.kafka/`) is shared, so only the first session ever runs Maven.
Register it in tests/conftest.py with `pytest_plugins = ["tests.kafka_broker"]`.

Missing java or mvn skips the tests that need the broker, except under CI (CI == "true"), where it
fails them: a missing broker must never turn into a green run. Any other start failure fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NoReturn

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # the class confluent_kafka.admin re-exports untyped

REPO = Path(__file__).resolve().parents[1]
KAFKA_LOCAL = REPO / "scripts" / "kafka-local"
EXIT_MISSING_TOOL = 3  # scripts/kafka-local: java or mvn not on PATH
# the script bounds broker readiness itself (120 s); this also covers a cold Maven download
START_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 60.0

TopicFactory = Callable[..., str]


def _under_ci() -> bool:
    return os.environ.get("CI") == "true"


def _broker_unavailable(reason: str) -> NoReturn:
    """Skip locally; fail under CI, where the Kafka tests must run."""
    if _under_ci():
        pytest.fail(f"CI must run the Kafka tests: {reason}", pytrace=False)
    pytest.skip(reason)


def _run_kafka_local(state_dir: Path, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOGISYNC_KAFKA_STATE": str(state_dir),
        # the broker stops itself if this pytest process dies without running the teardown
        "LOGISYNC_KAFKA_WATCH_PID": str(os.getpid()),
    }
    return subprocess.run(
        [str(KAFKA_LOCAL), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@pytest.fixture(scope="session")
def kafka_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session broker's state dir: pid, bootstrap, server.properties, data/, broker.log."""
    return tmp_path_factory.mktemp("kafka-local")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_state_dir: Path) -> Iterator[str]:
    """`127.0.0.1:PORT` of a real broker started once for the session and stopped at its end."""
    try:
        started = _run_kafka_local(kafka_state_dir, "start", START_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        _run_kafka_local(kafka_state_dir, "stop", STOP_TIMEOUT_S)
        pytest.fail(f"scripts/kafka-local start took over {exc.timeout:.0f} s", pytrace=False)
    if started.returncode == EXIT_MISSING_TOOL:
        _broker_unavailable(_tail(started.stderr, 1) or "java or mvn is missing")
    if started.returncode != 0:
        _run_kafka_local(kafka_state_dir, "stop", STOP_TIMEOUT_S)
        pytest.fail(
            f"scripts/kafka-local start failed (exit {started.returncode}); "
            f"broker log: {kafka_state_dir / 'broker.log'}\n{_tail(started.stderr)}",
            pytrace=False,
        )
    bootstrap = started.stdout.strip().splitlines()[-1]
    try:
        yield bootstrap
    finally:
        _run_kafka_local(kafka_state_dir, "stop", STOP_TIMEOUT_S)


def unique_topic_name(prefix: str = "t") -> str:
    """A topic name no other test uses: `<prefix>-<12 hex>`, reduced to Kafka's legal characters."""
    legal = re.sub(r"[^A-Za-z0-9._-]", "_", prefix)[:80]
    return f"{legal}-{uuid.uuid4().hex[:12]}"


def create_topics(
    bootstrap: str,
    partitions_by_topic: Mapping[str, int],
    timeout: float = 30.0,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create the topics (replication 1, with the topic `config` if given) and wait until every
    partition has a leader.

    Auto topic creation is off on the test broker, so a test that forgets this fails like production.
    The topics keep messages forever (`retention.ms=-1`): tests produce messages timestamped in the
    past, which the broker's default 7-day retention would delete at its next check, mid-test.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new_topics = [
        NewTopic(name, num_partitions=count, config={"retention.ms": "-1", **(config or {})})
        for name, count in partitions_by_topic.items()
    ]
    for name, future in admin.create_topics(new_topics, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            raise RuntimeError(f"creating topic {name!r} failed: {exc}") from exc
    deadline = time.monotonic() + timeout
    pending = dict(partitions_by_topic)
    while pending:
        metadata = admin.list_topics(timeout=max(0.5, deadline - time.monotonic()))
        for name, count in list(pending.items()):
            topic = metadata.topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == count
                and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
            ):
                del pending[name]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"topics not ready after {timeout:.0f} s: {sorted(pending)}")
        if pending:
            time.sleep(0.1)


def delete_topics(bootstrap: str, names: list[str], timeout: float = 30.0) -> None:
    """Delete the topics; a topic that is already gone is fine."""
    if not names:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(names, operation_timeout=timeout).values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if "UNKNOWN_TOPIC" not in str(exc):
                raise


@pytest.fixture
def kafka_topic_factory(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    """`make(partitions=1, prefix=<test name>) -> name`: a fresh, ready topic, deleted after the test."""
    created: list[str] = []

    def make(partitions: int = 1, prefix: str | None = None) -> str:
        name = unique_topic_name(prefix or request.node.name)
        create_topics(kafka_bootstrap, {name: partitions})
        created.append(name)
        return name

    yield make
    delete_topics(kafka_bootstrap, created)
