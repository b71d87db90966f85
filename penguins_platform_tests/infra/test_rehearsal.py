"""`make rehearse`, as a user runs it: the production stacks start on this machine from
infra/ and pass one whole cycle, and nothing of them is left running afterwards.

What the cycle covers is in `penguins_platform/rehearsal/cycle.py`; that the rehearsal fails
on a broken template is in test_rehearsal_defects.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from penguins_platform_tests.conftest import REPO_ROOT
from penguins_platform_tests.servers import stop_process_group

# The cheapest training that registers: the cycle is about the seams, not the model.
QUICK = "--epochs 2 --folds 2 --threshold 0"


class Rehearse:
    """`make rehearse` in its own session; whatever still runs at the end is stopped with
    its group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[subprocess.Popen] = []

    def start(self, args: str) -> subprocess.Popen:
        command = ["make", "--no-print-directory", "-C", str(REPO_ROOT), "rehearse",
                   f"ARGS={args} --folder {self.folder}"]  # fmt: skip
        # Nothing of this machine's AWS settings: the rehearsal gives each task its own.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        process = subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                stop_process_group(process, grace_seconds=60)


@pytest.fixture
def rehearse_command(tmp_path: Path) -> Iterator[Rehearse]:
    rehearse = Rehearse(tmp_path / "rehearsal")
    yield rehearse
    rehearse.stop()


def processes_of(folder: Path) -> list[str]:
    """Command lines of this machine's processes whose command or environment names
    `folder` (every task's DAGSTER_HOME is in it)."""
    text = str(folder).encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])
    return found


def found(pattern: str, output: str) -> str:
    match = re.search(pattern, output)
    assert match is not None, f"no {pattern!r} in:\n{output[-4000:]}"
    return match[1]


def test_make_rehearse_passes_one_cycle_and_stops_everything(rehearse_command):
    process = rehearse_command.start(f"{QUICK} --keep-running")
    assert process.stdout is not None
    output = ""
    for line in process.stdout:
        output += line
        if line.startswith("Still running"):
            break
    else:
        pytest.fail(f"make rehearse exited {process.wait()}:\n{output[-6000:]}")
    # Stopped as a user stops it (Ctrl-C, or the terminal closing): every task, the
    # database and moto go with it.
    os.killpg(process.pid, signal.SIGTERM)
    output += process.communicate(timeout=120)[0]

    assert "Rehearsal stopped" in output
    assert re.search(r"Webserver answering at http://127\.0\.0\.1:\d+ after [\d.]+ s", output)
    assert "training run: done in" in output
    assert "SageMaker endpoint penguins: InService, serving version 1" in output
    rows = int(found(r"Monitoring read (\d+) rows that SageMaker captured", output))
    assert rows >= 40, "the 40 rows of traffic reach monitoring through SageMaker's capture"
    steps = int(found(r"Rehearsal passed: one cycle, (\d+) step tasks", output))
    # PENGUINS_EXECUTOR=ecs from the template: every step of every run is a task of its own.
    assert steps >= 10
    tasks = rehearse_command.folder / "tasks"
    families = {folder.name.rsplit("-", 1)[0] for folder in tasks.iterdir()}
    assert {"penguins-mlflow", "penguins-dagster-code", "penguins-dagster-daemon",
            "penguins-dagster-webserver"} <= families  # fmt: skip
    assert any(name.startswith("penguins-run_") for name in families), families
    assert processes_of(rehearse_command.folder) == []
