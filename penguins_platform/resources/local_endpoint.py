"""The local HTTP endpoint as a resource: where it listens, where it keeps its state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from penguins_platform.project import DEFAULT_SERVING_DIR, resolve_path


@dataclass(frozen=True)
class Deployment:
    action: str  # "started", "swapped" or "unchanged"
    version: str
    previous_version: str | None
    pid: int | None


class LocalEndpoint(dg.ConfigurableResource):
    """A long-lived endpoint process on this machine; see `penguins_platform.serving`.

    Binds loopback by default. Its pid, log, admin token and downloaded models live in
    `state_dir`, so `make stop` and later deployments find it.
    """

    host: str = Field(default="127.0.0.1", description="Interface to bind; loopback by default.")
    port: int = Field(default=8080, description="Port to listen on.")
    state_dir: str = Field(
        default=str(DEFAULT_SERVING_DIR),
        description="Folder for the pid, log, admin token and models (relative: project root).",
    )
    capture_enabled: bool = Field(default=True, description="Capture every prediction.")
    capture_uri: str | None = Field(
        default=None, description="Capture store; default sqlite:///<state_dir>/capture.db."
    )
    max_rows: int = Field(default=10_000, description="Rows per request above which: 413.")
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, description="Request body size above which: 413."
    )
    startup_timeout_seconds: float = Field(default=60.0, description="Wait for /health this long.")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def paths(self):
        from penguins_platform.serving.service import EndpointPaths

        return EndpointPaths(resolve_path(self.state_dir))

    def resolved_capture_uri(self) -> str | None:
        if not self.capture_enabled:
            return None
        return self.capture_uri or f"sqlite:///{self.paths.state_dir / 'capture.db'}"

    def deploy(self, model_dir: Path, version: str) -> Deployment:
        """Start the endpoint with `model_dir`, or swap it into the running one."""
        from penguins_platform.serving import service

        paths = self.paths
        running = service.health(self.url)
        if running is None:
            pid = service.start(
                paths, model_dir, version, self.host, self.port, self.resolved_capture_uri(),
                self.max_rows, self.max_body_bytes, self.startup_timeout_seconds,
            )  # fmt: skip
            return Deployment("started", version, None, pid)
        if running.get("service") != "penguins-endpoint":
            raise service.EndpointError(f"{self.url} is taken by another service: {running}")
        previous = str(running.get("model_version"))
        if previous == version:
            return Deployment("unchanged", version, previous, service.read_pid(paths))
        service.swap(self.url, paths, model_dir, version)
        return Deployment("swapped", version, previous, service.read_pid(paths))

    def rollback(self, deployment: Deployment) -> None:
        """Undo `deployment`: swap the previous version back in, or stop a fresh server."""
        from penguins_platform.serving import service

        if deployment.action == "started":
            service.stop(self.paths)
        elif deployment.action == "swapped" and deployment.previous_version:
            model_dir = inference_dir(self.paths.models_dir / deployment.previous_version)
            service.swap(self.url, self.paths, model_dir, deployment.previous_version)

    def served_version(self) -> str | None:
        """The version the endpoint answers with now, or None when nothing answers."""
        from penguins_platform.serving import service

        answer = service.health(self.url)
        return None if answer is None else str(answer.get("model_version"))

    def stop(self) -> bool:
        from penguins_platform.serving import service

        return service.stop(self.paths)


def inference_dir(model_dir: Path) -> Path:
    """Where a downloaded MLflow model keeps the numpy inference extract."""
    return model_dir / "artifacts" / "inference"
