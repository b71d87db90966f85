"""ECS's part of the rehearsal: every task that ECS (moto) holds becomes a process here.

The services' tasks, the runs' tasks (`EcsRunLauncher` in the daemon) and the steps' tasks
(`ecs_executor` in a run) are all started through ECS's RunTask, which moto records. The agent
below watches moto for tasks it has not started, and runs each one's command as a process with
what ECS would give the container: the task definition's `environment`, its `secrets` read
from Secrets Manager, the RunTask `containerOverrides`, the image's own environment, and the
variables ECS injects (the task metadata endpoint, which the launcher and the executor ask
for their own task, and the task role's credentials endpoint). When a process ends, its task
stops with the process's exit code; a task stopped through ECS has its process stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from penguins_platform.rehearsal import aws
from penguins_platform.rehearsal.containers import Filesystem, image_environment

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
# ECS's own StopTask is looked for every this many polls: each look is a call per task.
STOP_CHECK_POLLS = 4


@dataclass
class Task:
    """One ECS task and the process that plays it."""

    arn: str
    cluster: str
    family: str
    container: str
    role_arn: str | None
    service: bool = False  # started by an ECS service, not by a run launcher or executor
    process: subprocess.Popen | None = None
    log: Path | None = None
    exit_code: int | None = None
    environment: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


class _Endpoints(BaseHTTPRequestHandler):
    """ECS's task metadata endpoint (v4) and credentials endpoint, one path per task."""

    tasks: dict[str, Task]

    def do_GET(self) -> None:
        parts = [part for part in self.path.split("/") if part]
        task = next((t for t in list(self.tasks.values()) if parts[1:2] == [t.id]), None)
        if task is None:
            self.send_error(404)
            return
        if parts[0] == "metadata" and len(parts) == 2:
            body: dict[str, Any] = {"Name": task.container, "DockerName": task.container}
        elif parts[0] == "metadata" and parts[2:] == ["task"]:
            body = {"Cluster": task.cluster, "TaskARN": task.arn, "Family": task.family}
        elif parts[0] == "credentials" and task.role_arn:
            body = aws.fake_credentials(task.role_arn)
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class ContainerWorld:
    """What every container shares: the checkout, the image, AWS's address and region."""

    app: Path
    dockerfile: Path
    instance_files: list[Path]  # copied into each task's DAGSTER_HOME, as the image does
    start_service: Path
    region: str
    aws_url: str
    host_names: Mapping[str, str]  # private DNS names (Cloud Map) -> 127.0.0.1
    ports: Mapping[int, int]  # container port -> port here (every task shares 127.0.0.1)
    capacity: int = 3  # run and step tasks running at once; more wait for a slot
    edit_home: Callable[[Path], None] | None = None


class Agent:
    """Runs moto's ECS tasks as processes until stopped."""

    def __init__(self, ecs: Any, secrets: Any, world: ContainerWorld, root: Path) -> None:
        self.ecs = ecs
        self.secrets = secrets
        self.world = world
        self.root = root
        self.tasks: dict[str, Task] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._image = image_environment(world.dockerfile)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]

    def _handler(self) -> type[_Endpoints]:
        return type("Endpoints", (_Endpoints,), {"tasks": self.tasks})

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        from penguins_platform.serving.service import terminate_group

        self._stop.set()
        self._threads[1].join(timeout=10)
        with self._lock:
            running = [task for task in self.tasks.values() if task.process is not None]
        for task in running:
            if task.process is not None and task.process.poll() is None:
                terminate_group(task.process.pid, 10.0)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    task.process.wait(timeout=5)
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------------------------

    def _watch(self) -> None:
        polls = 0
        while not self._stop.is_set():
            polls += 1
            try:
                self._start_new_tasks()
                self._reap(stop_check=polls % STOP_CHECK_POLLS == 0)
            except Exception as error:  # keep watching: one bad task must not stop the rest
                log.exception("rehearsal agent")
                self.failures.append(f"agent: {error!r}")
            self._stop.wait(POLL_SECONDS)

    def _start_new_tasks(self) -> None:
        for cluster in self.ecs.list_clusters()["clusterArns"]:
            arns = self.ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]
            new = [arn for arn in arns if arn not in self.tasks]
            if not new:
                continue
            for described in self.ecs.describe_tasks(cluster=cluster, tasks=new)["tasks"]:
                service = described.get("startedBy", "").startswith("ecs-svc/")
                if service or self._busy() < self.world.capacity:
                    self._start(described)

    def _busy(self) -> int:
        """Run and step tasks whose process runs: on ECS each has a machine of its own, here
        they share this one's cores, so the rest wait, as tasks wait for capacity."""
        with self._lock:
            return sum(
                1 for task in self.tasks.values()
                if not task.service and task.process is not None and task.exit_code is None
            )  # fmt: skip

    def _start(self, described: dict[str, Any]) -> None:
        definition = self.ecs.describe_task_definition(
            taskDefinition=described["taskDefinitionArn"]
        )["taskDefinition"]
        [container] = [c for c in definition["containerDefinitions"] if c.get("essential", True)]
        task = Task(
            arn=described["taskArn"],
            cluster=described["clusterArn"],
            family=definition["family"],
            container=container["name"],
            role_arn=definition.get("taskRoleArn"),
            service=described.get("startedBy", "").startswith("ecs-svc/"),
        )
        with self._lock:
            self.tasks[task.arn] = task
        overrides = {
            o["name"]: o for o in described.get("overrides", {}).get("containerOverrides", [])
        }.get(container["name"], {})
        folder = self.root / "tasks" / f"{task.family}-{task.id[:8]}"
        files = Filesystem(
            app=self.world.app,
            home=folder / "dagster_home",
            tmp=folder / "tmp",
            bin=self.root / "image-bin",
            image_home=self._image.get("DAGSTER_HOME", "/opt/dagster/dagster_home"),
        )
        self._prepare(files)
        try:
            task.environment = self._environment(task, container, overrides, files)
        except Exception as error:  # a secret ECS cannot read: the task never starts
            self._fail(task, 1, f"CannotPullContainerError/ResourceInitializationError: {error}")
            return
        command = list(overrides.get("command") or container.get("command") or [])
        entry = list(container.get("entryPoint") or [])
        task.command = [files.host_path(arg) for arg in self._remap_ports(entry + command)]
        task.log = folder / "output.log"
        handle = task.log.open("wb")
        log.info("starting %s (%s): %s", task.family, task.id, " ".join(task.command)[:200])
        try:
            task.process = subprocess.Popen(
                task.command, env=task.environment, cwd=self.world.app,
                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            self._fail(task, 127, f"CannotStartContainerError: {error}")

    def _prepare(self, files: Filesystem) -> None:
        files.home.mkdir(parents=True, exist_ok=True)
        files.tmp.mkdir(parents=True, exist_ok=True)
        for source in self.world.instance_files:
            shutil.copy(source, files.home / source.name)
        if self.world.edit_home is not None:
            self.world.edit_home(files.home)
        files.bin.mkdir(parents=True, exist_ok=True)
        target = files.bin / "start-service"
        if not target.exists():
            shutil.copy(self.world.start_service, target)
            target.chmod(0o755)

    def _environment(
        self, task: Task, container: dict, overrides: dict, files: Filesystem
    ) -> dict[str, str]:
        environment = {
            name: files.host_path(value) for name, value in self._image.items() if name != "PATH"
        }
        environment["PATH"] = files.host_search_path(self._image.get("PATH", ""))
        # What Docker sets for the image's user.
        environment["HOME"] = str(files.home.parent)
        environment["HOSTNAME"] = socket.gethostname()
        for pair in container.get("environment", []) + overrides.get("environment", []):
            environment[pair["name"]] = self._host_value(pair["value"], files)
        for secret in container.get("secrets", []):
            environment[secret["name"]] = aws.secret_value(self.secrets, secret["valueFrom"])
        # What ECS injects into every Fargate container. The credentials come from the task
        # role through the endpoint, so no process here holds a static key.
        environment.update(
            ECS_CONTAINER_METADATA_URI_V4=f"{self.endpoint}/metadata/{task.id}",
            ECS_CONTAINER_METADATA_URI=f"{self.endpoint}/metadata/{task.id}",
            AWS_EXECUTION_ENV="AWS_ECS_FARGATE",
            AWS_REGION=self.world.region,
            AWS_DEFAULT_REGION=self.world.region,
        )
        if task.role_arn:
            environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = (
                f"{self.endpoint}/credentials/{task.id}"
            )
        # The rehearsal's stand-in for AWS's network: every AWS client reaches moto.
        environment["AWS_ENDPOINT_URL"] = self.world.aws_url
        return environment

    def _host_value(self, value: str, files: Filesystem) -> str:
        for name, address in self.world.host_names.items():
            value = value.replace(name, address)
        return files.host_path(value)

    def _remap_ports(self, command: list[str]) -> list[str]:
        """Container ports become this machine's ports: `-p 4000`, `--port 5000`."""
        remapped = []
        previous = ""
        for arg in command:
            if previous in ("-p", "--port") and arg.isdigit():
                arg = str(self.world.ports.get(int(arg), int(arg)))
            for inside, outside in self.world.ports.items():
                arg = arg.replace(f"--port {inside}", f"--port {outside}")
            remapped.append(arg)
            previous = arg
        return remapped

    def _reap(self, stop_check: bool) -> None:
        with self._lock:
            running = [t for t in self.tasks.values() if t.process and t.exit_code is None]
        for task in running:
            assert task.process is not None
            code = task.process.poll()
            if code is None:
                if stop_check and self._stopped_through_ecs(task):
                    from penguins_platform.serving.service import terminate_group

                    terminate_group(task.process.pid, 10.0)
                continue
            task.exit_code = code
            aws.stop_task(task.arn, code, "Essential container in task exited", self.world.region)
            if code != 0:
                self.failures.append(f"{task.family} exited with {code}: {self.tail(task)}")

    def _stopped_through_ecs(self, task: Task) -> bool:
        [described] = self.ecs.describe_tasks(cluster=task.cluster, tasks=[task.arn])["tasks"]
        return described.get("desiredStatus") == "STOPPED"

    def _fail(self, task: Task, code: int, reason: str) -> None:
        task.exit_code = code
        aws.stop_task(task.arn, code, reason, self.world.region)
        self.failures.append(f"{task.family}: {reason}")

    def tail(self, task: Task, characters: int = 3000) -> str:
        if task.log is None or not task.log.exists():
            return ""
        return task.log.read_text(errors="replace")[-characters:]

    @contextlib.contextmanager
    def running(self) -> Iterator[Agent]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, failed: Callable[[], str | None]
) -> Any:
    """Poll `condition` until it gives something truthy; raise naming `what`, with the first
    failure `failed` reports, when the time runs out or something fails first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        reason = failed()
        if reason:
            raise RehearsalError(f"while waiting for {what}: {reason}")
        time.sleep(0.5)
    raise RehearsalError(f"{what}: not within {timeout:.0f} s")


class RehearsalError(RuntimeError):
    """The rehearsed deployment did not do what production must; the message says where."""
