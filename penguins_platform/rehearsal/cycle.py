"""One production cycle through the rehearsed deployment, as an operator would drive it.

Training is launched through the webserver's GraphQL API; the champion sensor (in the daemon,
evaluated by the code location) deploys the new champion to SageMaker by itself; sampled
traffic goes to that endpoint from a client, as an application would send it, and its data
capture lands in S3; and monitoring reads it back.
Every run is an ECS task, and under `PENGUINS_EXECUTOR=ecs` every step is one too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from penguins_platform.rehearsal.ecs import RehearsalError, wait_until
from penguins_platform.rehearsal.topology import PREFIX, TERMINAL, Rehearsal
from penguins_platform.tracking.contract import VERSION_TAG

DEPLOYMENT_JOB = "deployment_job"


@dataclass
class Cycle:
    """What the cycle did, with how long each part took."""

    seconds: dict[str, float] = field(default_factory=dict)
    served_version: str | None = None
    monitored_rows: int = 0
    step_tasks: int = 0

    def lines(self) -> list[str]:
        return [f"  {what}: {seconds:.1f} s" for what, seconds in self.seconds.items()]


def _timed(cycle: Cycle, what: str, say: Callable[[str], None]) -> Callable[[], None]:
    started = time.monotonic()

    def done() -> None:
        cycle.seconds[what] = time.monotonic() - started
        say(f"{what}: done in {cycle.seconds[what]:.1f} s")

    return done


def run_cycle(
    rehearsal: Rehearsal,
    training: Mapping[str, Any],
    traffic_requests: int = 40,
    say: Callable[[str], None] = print,
    timeout: float = 900.0,
) -> Cycle:
    """Train, let the sensor deploy, send traffic, monitor; raise RehearsalError naming the
    part that failed and why."""
    cycle = Cycle()
    done = _timed(cycle, "training run", say)
    say("Launching training_job through the webserver's GraphQL API …")
    run_id = rehearsal.launch("training_job", training)
    rehearsal.wait_for_run(run_id, timeout)
    done()

    done = _timed(cycle, "sensor deployment to SageMaker", say)
    say("Waiting for champion_sensor to deploy the new champion …")
    deployment = wait_until(
        lambda: _finished_deployment(rehearsal), timeout, "the sensor's deployment run",
        rehearsal.failure,
    )  # fmt: skip
    if deployment["status"] != "SUCCESS":
        raise RehearsalError(
            f"deployment run {deployment['runId']} ended {deployment['status']}: "
            f"{rehearsal.run_failure(deployment['runId'])}"
        )
    cycle.served_version = _served_version(rehearsal)
    if cycle.served_version is None:
        raise RehearsalError(f"SageMaker endpoint {PREFIX} is not InService after deployment")
    done()
    say(f"SageMaker endpoint {PREFIX}: InService, serving version {cycle.served_version}")

    done = _timed(cycle, "traffic", say)
    _send_traffic(rehearsal, traffic_requests)
    done()

    done = _timed(cycle, "monitoring run", say)
    run_id = rehearsal.launch("monitoring_job")
    rehearsal.wait_for_run(run_id, timeout)
    cycle.monitored_rows = int(rehearsal.materialization(run_id, "production_data")["row_count"])
    if cycle.monitored_rows < traffic_requests:
        raise RehearsalError(
            f"monitoring read {cycle.monitored_rows} captured rows of the {traffic_requests} "
            "sent to SageMaker"
        )
    done()
    say(f"Monitoring read {cycle.monitored_rows} rows that SageMaker captured")
    assert rehearsal.agent is not None
    cycle.step_tasks = sum(
        1 for task in rehearsal.agent.tasks.values() if "execute_step" in task.command
    )
    return cycle


def _send_traffic(rehearsal: Rehearsal, requests: int) -> None:
    """Production traffic comes from clients, not from Dagster: sampled penguins sent to the
    endpoint through sagemaker-runtime, ten a request, as an application would."""
    from penguins_platform.traffic import sample_records, shipped_penguins

    runtime = rehearsal.clients("sagemaker-runtime")
    records = sample_records(shipped_penguins(), requests, seed=7)
    for start in range(0, len(records), 10):
        body = json.dumps({"inputs": records[start : start + 10]})
        runtime.invoke_endpoint(EndpointName=PREFIX, ContentType="application/json", Body=body)


def _finished_deployment(rehearsal: Rehearsal) -> dict[str, Any] | None:
    runs = rehearsal.runs(DEPLOYMENT_JOB)
    finished = [run for run in runs if run["status"] in TERMINAL]
    return finished[0] if finished and len(finished) == len(runs) else None


def _served_version(rehearsal: Rehearsal) -> str | None:
    endpoint = rehearsal.sagemaker_endpoint()
    if not endpoint or endpoint["EndpointStatus"] != "InService":
        return None
    sagemaker = rehearsal.clients("sagemaker")
    tags = sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    return next((tag["Value"] for tag in tags if tag["Key"] == VERSION_TAG), None)
