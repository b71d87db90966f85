"""Test tiers, set from the fixtures a test uses, so a new test lands in its tier unmarked.

- `integration`: a real server or database runs for the test (an MLflow server, the endpoint
  process, moto, PostgreSQL, the Dagster daemon), or it trains the whole lineage.
- `e2e`: the user's own commands (`make`, `python -m penguins_platform`), `dagster dev`, or
  the browser.
- Everything else is the fast tier (`make test-fast`): plain code, single assets and runs
  that fail early, in the test's own process, with no system package.

A fixture that starts one of these things is listed below under its tier, and a test that
uses it, directly or through another fixture, gets the marker. A server started any other
way would hide from this table, so in a fast-tier test (its fixtures included) starting one
fails and says what to do (`pytest_runtest_protocol`).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

TIER_FIXTURES: dict[str, frozenset[str]] = {
    "e2e": frozenset({"dagster_dev", "browser", "make", "penguins_cli", "rehearse_command"}),
    "integration": frozenset(
        {
            "mlflow_server",
            "auth_server",
            "moto_server",
            "module_moto_server",
            "postgres",
            "postgres_cluster",
            "dagster_daemon",
            "endpoint",
            "fresh_endpoint",
            "start_endpoint",
            "registry",
            "registry_template",
            "train_lineage",
            "rehearsal",
        }
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: a real server or database, or a whole training run"
    )
    config.addinivalue_line("markers", "e2e: the user's commands, `dagster dev` or the browser")


def tier_of(fixturenames: list[str]) -> str | None:
    """The heaviest tier that these fixtures put a test in; None for the fast tier."""
    used = set(fixturenames)
    return next((tier for tier, names in TIER_FIXTURES.items() if used & names), None)


# The longest files of all (minutes each): they start before every other file, so the other
# worker works through the rest meanwhile instead of waiting for them at the end.
LONGEST_FIXTURES = frozenset({"rehearse_command", "rehearsal"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    file_weight: dict[str, int] = {}
    for item in items:
        fixtures = getattr(item, "fixturenames", [])
        tier = tier_of(fixtures)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
        weight = list(TIER_FIXTURES).index(tier) if tier else len(TIER_FIXTURES)
        if LONGEST_FIXTURES & set(fixtures):
            weight = -1
        file_weight[item.nodeid.split("::")[0]] = min(
            weight, file_weight.get(item.nodeid.split("::")[0], weight)
        )
    # Files with the heaviest tests first, so that two workers finish together: a long
    # end-to-end file that starts last keeps one worker busy while the other idles. Whole
    # files move, in their own order, so module fixtures are set up once.
    items.sort(key=lambda item: file_weight[item.nodeid.split("::")[0]])


class ServerInFastTestError(RuntimeError):
    """A test outside the tier fixtures started a server, so it would run in the fast tier."""


def _refuse(what: str) -> Callable[..., object]:
    def refuse(*args: object, **kwargs: object) -> object:
        raise ServerInFastTestError(
            f"this test starts {what}, so it does not belong in the fast tier: start it "
            "through a fixture listed in penguins_platform_tests/tiers.py (or add the fixture "
            "that starts it there)"
        )

    return refuse


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Around a fast-tier test's set-up, call and teardown (its module and session fixtures
    included), starting a detached process (a server), moto or PostgreSQL fails."""
    if tier_of(getattr(item, "fixturenames", [])) is not None:
        return (yield)
    from moto.server import ThreadedMotoServer

    from penguins_platform_tests.postgres import PostgresCluster

    popen_init = subprocess.Popen.__init__

    def init(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("start_new_session"):
            _refuse(f"a detached process ({args[0] if args else kwargs.get('args')!r})")()
        popen_init(self, *args, **kwargs)

    with contextlib.ExitStack() as guards:
        guards.enter_context(mock.patch.object(subprocess.Popen, "__init__", init))
        guards.enter_context(mock.patch.object(ThreadedMotoServer, "start", _refuse("moto")))
        guards.enter_context(mock.patch.object(PostgresCluster, "start", _refuse("PostgreSQL")))
        return (yield)
