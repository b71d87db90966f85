"""The tiers follow the fixtures: a test lands in its tier without a hand-written marker, and a
fast-tier test that starts a server fails, saying what to do."""

import pytest

from penguins_platform_tests.tiers import tier_of

pytest_plugins = ["pytester"]

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


def test_a_fixture_puts_its_tests_in_the_heaviest_tier_it_names():
    assert tier_of(["tmp_path", "cleaned"]) is None
    assert tier_of(["tmp_path", "endpoint"]) == "integration"
    assert tier_of(["endpoint", "dagster_dev"]) == "e2e"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=TIERED_SUITE)
    return pytester


def _selected(suite: pytest.Pytester, markers: str) -> set[str]:
    done = suite.runpytest_subprocess(
        "-p", "penguins_platform_tests.tiers", "--collect-only", "-q", "-m", markers
    )
    return {line.split("::")[1] for line in done.outlines if "::" in line}


def test_markers_follow_the_fixtures_a_test_uses_even_indirectly(suite):
    assert _selected(suite, "integration") == {"test_through_another_fixture"}
    assert _selected(suite, "e2e") == {"test_user_command"}
    assert _selected(suite, "not integration and not e2e") == {
        "test_plain",
        "test_starts_a_server_inline",
    }


def test_a_fast_test_that_starts_a_server_fails_and_says_what_to_do(suite):
    done = suite.runpytest_subprocess(
        "-p", "penguins_platform_tests.tiers", "-k", "inline or plain"
    )
    done.assert_outcomes(passed=1, failed=1)
    done.stdout.fnmatch_lines(["*this test starts a detached process*tiers.py*"])
