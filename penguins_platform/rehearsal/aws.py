"""AWS for the rehearsal: moto in server mode, in this process, with what it lacks patched in.

Every AWS call of the rehearsed services (S3, Secrets Manager, ECS, IAM, ECR, SageMaker,
CloudWatch Logs, CloudFormation) goes over HTTP to this server, as it would to AWS. moto runs
here rather than as its own process because the patches below change its backend objects:

- SageMaker: UpdateEndpoint and an invocation that scores like MLflow's serving container
  (`sagemaker_emulator.py`);
- ECS: RunTask on a Fargate task definition whose containers have no memory of their own
  (what `EcsRunLauncher` registers, and what AWS accepts) fails in moto 5.2; and moto moves
  a task towards STOPPED each time it is described. Here a task runs until the rehearsal's
  agent says its process ended, with that process's exit code.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

from penguins_platform.serving.service import free_port

ACCOUNT = "123456789012"  # moto's default account


_MISSING = object()


class Patches:
    """Attributes set on moto's classes, undone together (pytest's `monkeypatch`, without
    pytest). What is restored is the class's own attribute as stored (a staticmethod stays
    one), or nothing where the class only inherited it."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    def setattr(self, target: Any, name: str, value: Any, raising: bool = True) -> None:
        if raising and not hasattr(target, name):
            raise AttributeError(f"{target!r} has no attribute {name!r}")
        own = (
            vars(target).get(name, _MISSING)
            if isinstance(target, type)
            else getattr(target, name, _MISSING)
        )
        self._undo.append((target, name, own))
        setattr(target, name, value)

    def undo(self) -> None:
        for target, name, old in reversed(self._undo):
            if old is _MISSING:
                delattr(target, name)
            else:
                setattr(target, name, old)
        self._undo.clear()


def _patch_ecs(patches: Patches) -> None:
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.moto_api import state_manager

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def requirements(task_definition: Any) -> dict[str, Any]:
        # Fargate sizes the task, not its containers: give each container the task's memory
        # where it names none, as Fargate does.
        memory = int(task_definition.memory or 0)
        for container in task_definition.container_definitions:
            if not any(container.get(k) for k in ("memory", "memoryReservation", "Memory")):
                container.setdefault("memory", memory)
        return original(task_definition)

    patches.setattr(
        EC2ContainerServiceBackend, "_calculate_task_resource_requirements",
        staticmethod(requirements),
    )  # fmt: skip
    # Tasks change state only when the agent says so.
    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})


def stop_task(task_arn: str, exit_code: int, reason: str, region: str) -> None:
    """Mark a task STOPPED with its container's exit code, as ECS does when the process
    in it ends (moto's own StopTask knows no exit code)."""
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[ACCOUNT][region]
    for tasks in backend.tasks.values():
        task = tasks.get(task_arn)
        if task is None:
            continue
        for container in task.containers:
            container.exitCode = exit_code
            container.last_status = "STOPPED"
        task.stopped_reason = reason
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"
        return


@contextlib.contextmanager
def moto_on_loopback() -> Iterator[str]:
    """moto in server mode on 127.0.0.1, from an empty account: boto3 talks HTTP to it like
    to AWS. Stopped when the block ends."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        # moto keeps its state per process: start from an empty account.
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
        yield url
    finally:
        server.stop()


@contextlib.contextmanager
def running_moto(region: str) -> Iterator[str]:
    """moto on loopback with the patches above, until the block ends; its URL."""
    import logging

    from moto.moto_api import state_manager

    from penguins_platform.rehearsal import sagemaker_emulator

    # moto's web server logs every request; the rehearsal's output is the tasks' story.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    patches = Patches()
    with moto_on_loopback() as url:
        try:
            emulator = sagemaker_emulator.SageMakerEmulator(region=region, captures=True)
            sagemaker_emulator.install(patches, emulator)
            _patch_ecs(patches)
            yield url
        finally:
            patches.undo()
            state_manager.unset_transition("ecs::task")


def fake_credentials(role_arn: str) -> dict[str, str]:
    """What the ECS credentials endpoint answers for a task role: moto takes any key, and
    the key names the role, so a log shows which role a call came with."""
    name = role_arn.rsplit("/", 1)[-1]
    return {
        "RoleArn": role_arn,
        "AccessKeyId": f"ASIA{name.upper().replace('-', '')[:12]:0<16}",
        "SecretAccessKey": "rehearsal-secret-key",
        "Token": f"rehearsal-session-token-{name}",
        "Expiration": "2099-01-01T00:00:00Z",
    }


def secret_value(client: Any, value_from: str) -> str:
    """What ECS injects for a container secret: `valueFrom` is a secret's ARN, optionally
    followed by `:json-key:version-stage:version-id`."""
    parts = value_from.split(":")
    arn, rest = ":".join(parts[:7]), parts[7:]
    json_key, stage, version = [*rest, "", "", ""][:3]
    request: dict[str, str] = {"SecretId": arn}
    if stage:
        request["VersionStage"] = stage
    if version:
        request["VersionId"] = version
    text = client.get_secret_value(**request)["SecretString"]
    return str(json.loads(text)[json_key]) if json_key else text
