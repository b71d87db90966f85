"""The local endpoint as a deployment target: an HTTP server process on this machine.

The server is a service, not a step: it outlives the run that starts it. A new version is
loaded beside the serving one and swapped in only once it gives valid answers, so a redeploy
fails no request, and the swap is the promotion. Rolling back swaps the previous version in
again, or stops a server that this deployment started. Inside an ECS task or a Kubernetes
pod, which ends with its run, no server is started.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from penguins_platform.deploy.selection import TargetSettings, inside_task
from penguins_platform.deploy.target import (
    DeployError,
    Deployment,
    Fact,
    InvokeError,
    Link,
    LocalFile,
    Records,
)
from penguins_platform.serving import service
from penguins_platform.serving.contract import SMOKE_TEST_HEADER
from penguins_platform.serving.settings import LocalEndpointSettings
from penguins_platform.settings import variable

if TYPE_CHECKING:
    from penguins_platform.capture.sqlite import SqliteCapture


def refuse_inside_task() -> None:
    """Fail before the local endpoint deploys inside an ECS task or a Kubernetes pod: a server
    started there would serve until the task ends, then vanish with every version it held,
    while the run that started it reported success."""
    place = inside_task()
    if place is not None:
        raise DeployError(
            f"not starting the local endpoint inside {place}: its server would die when the "
            f"task ends. Leave local out of {variable(TargetSettings, 'targets')}, or run "
            "`make serve` on a machine that stays up"
        )


def inference_dir(model_dir: Path) -> Path:
    """Where a downloaded MLflow model keeps the numpy extract that the server loads."""
    return model_dir / "artifacts" / "inference"


class LocalTarget:
    """Deploys to the endpoint process that `settings` describe; see `DeploymentTarget`."""

    def __init__(
        self, settings: LocalEndpointSettings, model_name: str, log: logging.Logger | None = None
    ) -> None:
        self.settings = settings
        self.model_name = model_name
        self.log = log or logging.getLogger(__name__)

    @property
    def label(self) -> str:
        return f"local endpoint {self.settings.url}"

    @property
    def paths(self) -> service.EndpointPaths:
        return self.settings.paths

    def _keep(self, version: str, model_dir: Path) -> Path:
        """Copy the version's inference extract into the state folder, where a later rollback
        finds it after the download is gone."""
        kept = self._kept(version)
        if not kept.exists():
            self.paths.prepare()
            kept.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=kept.parent))
            shutil.copytree(inference_dir(model_dir), staging, dirs_exist_ok=True)
            staging.rename(kept)
        return kept

    def _kept(self, version: str) -> Path:
        return self.paths.models_dir / version / "inference"

    def deploy(self, version: str, model_dir: Path) -> Deployment:
        """Start the endpoint with `version`, or swap it into the running one."""
        settings = self.settings
        refuse_inside_task()
        try:
            kept = self._keep(version, model_dir)
            running = service.health(settings.url)
            if running is None:
                service.start(
                    self.paths, kept, version, self.model_name, settings.server_options(),
                    settings.startup_timeout_seconds,
                )  # fmt: skip
                return Deployment(version, "started")
            if not service.is_endpoint(running):
                raise service.EndpointError(
                    f"port {settings.port} on {settings.host} is taken by another service, "
                    f"which answers /health with {json.dumps(running)[:200]}; stop it, or set "
                    f"{variable(LocalEndpointSettings, 'port')} to a free port"
                )
            previous = str(running.get("model_version"))
            if previous == version and running.get("model_name") == self.model_name:
                return Deployment(version, "unchanged", previous=previous)
            service.swap(settings.url, self.paths, kept, version, self.model_name)
            return Deployment(version, "swapped", previous=previous)
        except (service.EndpointError, OSError) as error:
            raise DeployError(str(error)) from error

    def invoke(
        self, records: Records, deployment: Deployment | None = None, *, smoke_test: bool = False
    ) -> object:
        """POST `records` to /invocations: the swap made any deployment the serving one. The
        server does not capture smoke-test requests."""
        url = f"{self.settings.url}/invocations"
        headers = {SMOKE_TEST_HEADER: "1"} if smoke_test else None
        try:
            status, body = service.request_json(url, {"inputs": records}, headers=headers)
        except (OSError, ValueError) as error:
            raise InvokeError(f"{url} failed: {error}") from error
        if status != 200:
            raise InvokeError(f"{url} answered {status}: {str(body)[:300]}")
        return body

    def served_version(self, deployment: Deployment | None = None) -> str | None:
        answer = service.health(self.settings.url)
        return str(answer.get("model_version")) if service.is_endpoint(answer) else None

    def promote(self, deployment: Deployment) -> None:
        """Nothing to do: the server swapped the version in once it gave valid answers."""

    def roll_back(self, deployment: Deployment) -> None:
        """Swap the previous version back in, or stop the server this deployment started."""
        if deployment.action == "started":
            self.log.info(f"stopping the {self.label}, which this deployment started")
            service.stop(self.paths)
        elif deployment.action == "swapped" and deployment.previous:
            self.log.info(f"swapping version {deployment.previous} back in on the {self.label}")
            kept = self._kept(deployment.previous)
            service.swap(self.settings.url, self.paths, kept, deployment.previous, self.model_name)

    def facts(self, deployment: Deployment) -> dict[str, Fact]:
        return {
            "url": Link(self.settings.url),
            "previous_version": deployment.previous or "",
            "pid": service.read_pid(self.paths) or 0,
            "log": LocalFile(str(self.paths.log_file)),
            "capture": self._capture_store(),
        }

    def _capture_store(self) -> Fact:
        """The capture store as a file the UI can show (`sqlite:////abs/path` reads badly)."""
        uri = self.settings.resolved_capture_uri()
        if uri is None:
            return "off"
        from penguins_platform.capture.sqlite import sqlite_path

        return LocalFile(str(sqlite_path(uri)))

    def capture_source(self) -> SqliteCapture | None:
        """The endpoint's capture store, which outlives the server; None when capture is off."""
        from penguins_platform.capture.sqlite import SqliteCapture, sqlite_path

        uri = self.settings.resolved_capture_uri()
        return SqliteCapture(sqlite_path(uri)) if uri else None

    def capture_counters(self) -> dict[str, int] | None:
        """The running server's capture counters (write failures, spilled and lost rows),
        or None when no endpoint answers."""
        answer = service.health(self.settings.url)
        if not service.is_endpoint(answer):
            return None
        capture = answer.get("capture")
        counters = capture if isinstance(capture, dict) else {}
        names = ("write_failures", "spilled", "lost", "queue_errors")
        return {name: int(counters.get(name) or 0) for name in names}
