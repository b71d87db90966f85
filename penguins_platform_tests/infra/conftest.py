"""Production-mode fixtures: a real PostgreSQL cluster, a database of its own per test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from penguins_platform_tests.postgres import PostgresCluster, running_cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One cluster for the session; each test takes a database of its own."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_cluster() -> Callable[[], AbstractContextManager[PostgresCluster]]:
    """New clusters of a test's own (`with postgres_cluster() as cluster:`), for a test that
    stops its database or must not share one; each is stopped and removed with its block."""
    return running_cluster


@pytest.fixture
def postgres_database(postgres: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty database, with the DAGSTER_PG_* variables pointing at it."""
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    for variable, value in postgres.environment(name).items():
        monkeypatch.setenv(variable, value)
    return name


def wait_for(condition, process, log: Path, what: str, timeout: float = 150.0):
    """Poll `condition` until it returns something truthy; fail with the process's log if the
    process exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"the process exited while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"no {what} within {timeout}s:\n{log.read_text()[-3000:]}")
