"""What every deployment target can do, and what one deployment reports.

One flow drives every target (`defs/deployment.py`): resolve the version, download it,
`deploy` it, smoke-test it through `invoke`, check it, then `promote` it or `roll_back`. So a
fourth target is one class with these verbs and one call of the asset factory.

Monitoring reads what each target captured (the local capture store, SageMaker's data
capture in S3) through the same objects, as one more verb beside these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from penguins_platform.capture.contract import CaptureSource

# "started" and "swapped" are the local endpoint's words for "created" and "updated": there,
# a process starts, or swaps the model it serves.
Action = Literal["created", "started", "updated", "swapped", "unchanged"]
Records = list[dict[str, object]]


@dataclass(frozen=True)
class Deployment:
    """One attempt to serve `version`: what it did, and what served before it."""

    version: str
    action: Action
    # What holds the version now: a SageMaker endpoint config, an Azure ML deployment.
    name: str | None = None
    # What served before: a version (local), an endpoint config, a deployment.
    previous: str | None = None


@dataclass(frozen=True)
class Link:
    """A URL worth a click in the UI: an endpoint, a cloud console."""

    url: str


@dataclass(frozen=True)
class LocalFile:
    """A file on the machine that runs the deployment, such as the endpoint's log."""

    path: str


Fact = str | int | float | Link | LocalFile


class DeployError(RuntimeError):
    """A deployment failed and the previous version keeps serving. The message says why.

    `transient` marks a failure worth retrying later, such as throttling that outlasted the
    SDK's own retries.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class TargetConfigError(ValueError):
    """A target is configured wrongly. Found before any call to it; the message says the fix."""


class InvokeError(RuntimeError):
    """Scoring through a target failed: unreachable, an error status, or an answer not JSON."""


class DeploymentTarget(Protocol):
    """A place that serves registered versions of the model."""

    @property
    def label(self) -> str:
        """What to call it in messages: "SageMaker endpoint penguins"."""
        ...

    def deploy(self, version: str, model_dir: Path) -> Deployment:
        """Make `version` reachable, from `model_dir`, a downloaded MLflow model.

        Raises `DeployError` and leaves the previous version serving when it fails.
        """
        ...

    def invoke(
        self, records: Records, deployment: Deployment | None = None, *, smoke_test: bool = False
    ) -> object:
        """The target's answer to `records`: through `deployment` when given, even before it
        takes traffic, else through whatever serves now. Raises `InvokeError`.

        `smoke_test` marks the deployment's own check requests, so that monitoring does not
        take them for production traffic: the same few rows, repeated, would read as drift.
        """
        ...

    def served_version(self, deployment: Deployment | None = None) -> str | None:
        """The version `deployment` serves, or that the target serves now; None when nothing
        serves."""
        ...

    def promote(self, deployment: Deployment) -> None:
        """Give `deployment`, which passed its checks, all the traffic."""
        ...

    def roll_back(self, deployment: Deployment) -> None:
        """Undo `deployment`, which failed its checks: what served before serves again."""
        ...

    def facts(self, deployment: Deployment) -> dict[str, Fact]:
        """Where the deployment lives and what it is made of, for the UI."""
        ...

    def capture_source(self) -> CaptureSource | None:
        """What the target captured of its traffic, for monitoring; None when it captures
        nothing (capture off, or not configured)."""
        ...
