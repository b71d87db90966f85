"""The rehearsal fails where production would: each of the two defects that kept the ECS
deployment from starting, put back into a copy of infra/, stops it with the error a user
would have met on AWS.

1. The webserver's task definition lacked the variables that the run launcher copies into
   runs, so `check-instance` (start-service) exited 2 and the service never started.
2. `env_vars` did not copy DAGSTER_ECS_TASK_DEFINITION_PREFIX into runs, so a run task under
   the ECS executor could not load the instance's run launcher.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from penguins_platform.rehearsal.ecs import RehearsalError
from penguins_platform.rehearsal.template import parse
from penguins_platform.rehearsal.topology import Rehearsal, edit_templates

PLATFORM_VARIABLES = ("PENGUINS_", "MLFLOW_TRACKING_URI", "SAGEMAKER_")


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[Callable[[Path], Rehearsal]]:
    """Start a rehearsal of the given infra/ copy; it is stopped (every task, the database,
    moto) when the test ends. Without the MLflow server: both defects stop everything before
    a run would reach it."""
    with contextlib.ExitStack() as started:

        def start(infra: Path) -> Rehearsal:
            return started.enter_context(
                Rehearsal(tmp_path / "rehearsal", infra, tracking_server=False)
            )

        yield start


def webserver_as_it_was(infra: Path) -> None:
    """The webserver's environment before the fix: no platform variables, one secret."""
    path = infra / "cloudformation" / "dagster.yaml"
    template = parse(path.read_text())
    [container] = template["Resources"]["WebserverTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    container["Environment"] = [
        item for item in container["Environment"]
        if not item["Name"].startswith(PLATFORM_VARIABLES)
    ]  # fmt: skip
    container["Secrets"] = [s for s in container["Secrets"] if s["Name"] == "DAGSTER_PG_PASSWORD"]
    # parse() gives intrinsic functions in their long form, which the rehearsal reads back.
    path.write_text(yaml.safe_dump(template, sort_keys=False))


def launcher_as_it_was(infra: Path) -> None:
    """env_vars before the fix: the run task never gets the task definition prefix."""
    path = infra / "dagster" / "dagster.yaml"
    config = yaml.safe_load(path.read_text())
    config["run_launcher"]["config"]["env_vars"].remove("DAGSTER_ECS_TASK_DEFINITION_PREFIX")
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_the_old_webserver_task_definition_never_starts(rehearsal, tmp_path):
    infra = edit_templates(tmp_path, webserver_as_it_was)

    with pytest.raises(RehearsalError) as raised:
        rehearsal(infra)

    message = str(raised.value)
    assert "penguins-dagster-webserver exited with 2" in message
    assert "check-instance: run_launcher.config.env_vars copies variables" in message
    unset = message.split("not set here: ", 1)[1].splitlines()[0].split(", ")
    assert {"PENGUINS_EXECUTOR", "PENGUINS_IO_BUCKET", "MLFLOW_TRACKING_URI",
            "MLFLOW_TRACKING_USERNAME", "SAGEMAKER_EXECUTION_ROLE_ARN", "SAGEMAKER_BUCKET",
            "SAGEMAKER_ENDPOINT", "SAGEMAKER_DATA_CAPTURE_URI"} <= set(unset)  # fmt: skip


def test_a_run_launcher_that_does_not_copy_its_prefix_fails_every_ecs_run(rehearsal, tmp_path):
    running = rehearsal(edit_templates(tmp_path, launcher_as_it_was))
    run_id = running.launch("training_job")

    with pytest.raises(RehearsalError) as raised:
        running.wait_for_run(run_id, timeout=300)

    message = str(raised.value)
    assert f"run {run_id} ended FAILURE" in message
    assert "DAGSTER_ECS_TASK_DEFINITION_PREFIX" in message
