"""Where the local endpoint listens, where it keeps its state, what it captures and refuses.

The deployment target that starts the endpoint (`deploy/local.py`) and the Dagster resource
that configures it (`defs/resources.py`) both take these settings; the server process itself
gets them as command-line flags (`service.ServerOptions`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from penguins_platform import defaults
from penguins_platform.project import DEFAULT_SERVING_DIR, resolve_path
from penguins_platform.serving import service
from penguins_platform.settings import Settings, setting


class LocalEndpointSettings(Settings):
    """Where the endpoint listens, where it keeps its state, what it captures and refuses."""

    host: str = setting(
        "PENGUINS_ENDPOINT_HOST", defaults.ENDPOINT_HOST, "Interface to bind; loopback by default."
    )
    port: int = setting("PENGUINS_ENDPOINT_PORT", defaults.ENDPOINT_PORT, "Port to listen on.")
    state_dir: str = setting(
        "PENGUINS_ENDPOINT_STATE_DIR",
        str(DEFAULT_SERVING_DIR),
        "Folder for the pid, log, admin token and models (relative: project root).",
    )
    capture: Literal["on", "off"] = setting(
        "PENGUINS_CAPTURE", "on", "Capture every prediction; `off` captures nothing."
    )
    capture_uri: str | None = setting(
        "PENGUINS_CAPTURE_URI", None, "Capture store; default `sqlite:///<state_dir>/capture.db`."
    )
    max_rows: int = Field(
        default=defaults.MAX_ROWS, description="Rows per request above which: 413."
    )
    max_body_bytes: int = Field(
        default=defaults.MAX_BODY_BYTES, description="Request body size above which: 413."
    )
    startup_timeout_seconds: float = Field(
        default=defaults.ENDPOINT_STARTUP_SECONDS, description="Wait for /health this long."
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def paths(self) -> service.EndpointPaths:
        return service.EndpointPaths(resolve_path(self.state_dir))

    def resolved_capture_uri(self) -> str | None:
        if self.capture == "off":
            return None
        return self.capture_uri or f"sqlite:///{self.paths.state_dir / 'capture.db'}"

    def server_options(self) -> service.ServerOptions:
        return service.ServerOptions(
            self.host, self.port, self.resolved_capture_uri(), self.max_rows, self.max_body_bytes
        )
