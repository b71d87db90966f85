"""The tiers follow the fixtures: a test lands in its tier without a hand-written marker, and a
fast-tier test that starts a server fails, saying what to do."""

import re
import subprocess
import sys

import pytest

from penguins_platform_tests.tiers import tier_of

TIERED_SUITE = """
import subprocess
import sys

import pytest


@pytest.fixture
def endpoint():
    yield "a real endpoint would start here"


@pytest.fixture
def served(endpoint):
    return endpoint


@pytest.fixture
def make():
    return "make"


def test_plain():
    pass


def test_through_another_fixture(served):
    pass


def test_user_command(make, endpoint):
    pass


def test_starts_a_server_inline():
    subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True).wait()
"""

# Prints each test's tier once the tiers plugin has marked it.
SHOW_TIERS = """
import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    for item in items:
        tiers = sorted(m.name for m in item.iter_markers() if m.name in ("integration", "e2e"))
        print(f"TIER {item.name} {','.join(tiers) or 'fast'}")
"""


def test_a_fixture_puts_its_tests_in_the_heaviest_tier_it_names():
    assert tier_of(["tmp_path", "cleaned"]) is None
    assert tier_of(["tmp_path", "endpoint"]) == "integration"
    assert tier_of(["endpoint", "dagster_dev"]) == "e2e"


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    """A small suite run under the tiers plugin, in a process of its own: this process has
    the plugin's guard around its own tests."""
    root = tmp_path_factory.mktemp("tiered")
    (root / "test_suite.py").write_text(TIERED_SUITE)
    (root / "conftest.py").write_text(SHOW_TIERS)
    command = [sys.executable, "-m", "pytest", "-p", "penguins_platform_tests.tiers", "-s", "-q"]
    return subprocess.run(
        [*command, "-p", "no:cacheprovider", "-p", "no:xdist", str(root)],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_markers_follow_the_fixtures_a_test_uses_even_indirectly(suite_run):
    tiers = dict(re.findall(r"^TIER (\w+) (\S+)$", suite_run.stdout, re.M))
    assert tiers == {
        "test_plain": "fast",
        "test_through_another_fixture": "integration",
        "test_user_command": "e2e",
        "test_starts_a_server_inline": "fast",
    }, suite_run.stdout


def test_a_fast_test_that_starts_a_server_fails_and_says_what_to_do(suite_run):
    assert "1 failed, 3 passed" in suite_run.stdout, suite_run.stdout[-3000:]
    assert "FAILED test_suite.py::test_starts_a_server_inline" in suite_run.stdout
    assert "this test starts a detached process" in suite_run.stdout
    assert "penguins_platform_tests/tiers.py" in suite_run.stdout
