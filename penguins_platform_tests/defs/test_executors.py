"""PENGUINS_EXECUTOR: which executor a run's steps get, and a clear error for a wrong name."""

import os
import subprocess
import sys

import dagster as dg
import pytest

from penguins_platform.definitions import defs
from penguins_platform.defs.executors import (
    CHOICES,
    EXECUTOR_VARIABLE,
    ExecutorChoiceError,
    executor_from_env,
)
from penguins_platform_tests.conftest import REPO_ROOT


@pytest.mark.parametrize("choice", CHOICES)
def test_each_choice_names_its_executor(choice):
    assert executor_from_env({EXECUTOR_VARIABLE: choice}).name == choice


@pytest.mark.parametrize("unset", [{}, {EXECUTOR_VARIABLE: ""}])
def test_unset_runs_every_step_in_process(unset):
    assert executor_from_env(unset) is dg.in_process_executor


@pytest.mark.parametrize(
    ("value", "name"),
    [("In-Process", "in_process"), (" K8S ", "k8s"), ("MULTIPROCESS", "multiprocess")],
)
def test_case_spaces_and_hyphens_are_forgiven(value, name):
    assert executor_from_env({EXECUTOR_VARIABLE: value}).name == name


@pytest.mark.parametrize("value", ["celery", "docker", "in process"])
def test_an_unknown_executor_names_the_variable_and_the_choices(value):
    with pytest.raises(ExecutorChoiceError) as raised:
        executor_from_env({EXECUTOR_VARIABLE: value})
    message = str(raised.value)
    assert f"{EXECUTOR_VARIABLE}={value!r}" in message
    assert "in_process, multiprocess, ecs, k8s" in message


def test_the_definitions_default_to_in_process():
    if os.environ.get(EXECUTOR_VARIABLE):
        pytest.skip(f"{EXECUTOR_VARIABLE} is set in this shell")
    assert defs.resolve_job_def("training_job").executor_def.name == "in_process"


def test_the_variable_reaches_the_training_job_where_the_definitions_load():
    probe = (
        "from penguins_platform.definitions import defs; "
        "print(defs.resolve_job_def('training_job').executor_def.name)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, EXECUTOR_VARIABLE: "multiprocess"},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "multiprocess"


def test_a_wrong_value_stops_the_definitions_from_loading_with_the_reason():
    done = subprocess.run(
        [sys.executable, "-c", "import penguins_platform.definitions"],
        env={**os.environ, EXECUTOR_VARIABLE: "celery"},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "ExecutorChoiceError: PENGUINS_EXECUTOR='celery' names no executor" in done.stderr
