"""The collector settings of the platform's own processes."""

import subprocess
import sys

from penguins_platform_tests.conftest import REPO_ROOT

PROGRAM = """
import atexit, gc, sys
from penguins_platform.runtime import exit_without_final_collection, tune_garbage_collector
gc.set_threshold(*map(int, sys.argv[1:4]))
tune_garbage_collector()
print(*gc.get_threshold())
atexit.register(lambda: print("exit handlers ran"))
exit_without_final_collection(int(sys.argv[4]))
"""


def _run(*arguments: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, *map(str, arguments)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_thresholds_rise_and_exit_keeps_its_code_and_its_handlers():
    done = _run(700, 10, 10, 3)
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["100000 50 100", "exit handlers ran"]


def test_a_higher_setting_or_a_disabled_collector_is_left_alone():
    assert _run(500_000, 80, 200, 0).stdout.splitlines()[0] == "500000 80 200"
    assert _run(0, 10, 10, 0).stdout.splitlines()[0] == "0 10 10"
