"""Which deployment targets a deployment enables: `PENGUINS_TARGETS`, or its default where
this process runs.

The local endpoint is a server that outlives the run that starts it, on the machine the run
ran on. Inside an ECS task or a Kubernetes pod that machine goes away with the task, and the
server with it: there the local endpoint is no default target, and it refuses to start
(`local.py`). Read where it is used (a sensor tick, a run's step), so every process of a
deployment answers for the place it runs in.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from penguins_platform.settings import UNCONFIGURED, EnvironmentSettings, setting, variable

TargetName = Literal["local", "sagemaker", "azure"]
TARGET_NAMES: tuple[TargetName, ...] = typing.get_args(TargetName)

# Set by the platform in every container it starts, so a process can tell that it lives only
# as long as its task or pod.
TASK_MARKERS = {
    "ECS_CONTAINER_METADATA_URI_V4": "an ECS task",
    "ECS_CONTAINER_METADATA_URI": "an ECS task",
    "KUBERNETES_SERVICE_HOST": "a Kubernetes pod",
}


def inside_task(environ: Mapping[str, str] | None = None) -> str | None:
    """'an ECS task' or 'a Kubernetes pod' when this process runs in one (`environ`, the
    process's environment when None, says so); None on a machine of its own."""
    environ = os.environ if environ is None else environ
    return next((place for name, place in TASK_MARKERS.items() if environ.get(name)), None)


class TargetSettings(EnvironmentSettings):
    """The deployment targets a deployment uses."""

    targets: Annotated[tuple[TargetName, ...] | None, NoDecode] = setting(
        "PENGUINS_TARGETS",
        None,
        "Deployment targets to enable, comma-separated: `local`, `sagemaker`, `azure` (the "
        "production stacks set `sagemaker`); a named cloud target that is not configured fails "
        "its deployment. Unset: every configured cloud target, and the local endpoint except "
        "inside an ECS task or a Kubernetes pod, where its server would die with the task.",
    )

    @field_validator("targets", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        """Names in any case, with spaces around them; an unknown one fails, naming the
        variable and the choices, before any deployment starts."""
        if not isinstance(value, str):
            return value
        given = {name.strip().lower() for name in value.split(",")} - {""}
        unknown = sorted(given - set(TARGET_NAMES))
        if unknown or not given:
            what = f"{', '.join(map(repr, unknown))}, which is no target" if unknown else "nothing"
            raise ValueError(
                f"{variable(cls, 'targets')}={value!r} names {what}; name one or more of "
                f"{', '.join(TARGET_NAMES)}, comma-separated, or unset it for the default"
            )
        return tuple(name for name in TARGET_NAMES if name in given)


@dataclass(frozen=True)
class TargetStatus:
    """Whether a deployment uses a target, and if not, why and what turns it on."""

    name: TargetName
    enabled: bool
    reason: str = ""
    named: bool = False  # PENGUINS_TARGETS names it

    @property
    def unmet(self) -> bool:
        """Named, yet it cannot deploy: an error to report, not a target to skip."""
        return self.named and not self.enabled


def target_status(
    name: TargetName, configured: bool, enable_hint: str, environ: Mapping[str, str] | None = None
) -> TargetStatus:
    """Whether a deployment uses the target `name`, which is `configured` or says how to be
    (`enable_hint`), as `PENGUINS_TARGETS` of `environ` (the process's when None) decides.

    Unset, the variable keeps the rule of old: each cloud target once it is configured, and
    the local endpoint, except inside a task or pod. Set, it names exactly the targets to use.
    A named cloud target that is not configured is unmet rather than skipped: the operator
    asked for it, and a deployment that passed with nothing deployed would hide the missing
    setting. Its deployment fails naming the variables to set, and the sensor waits, keeping
    its cursor, so the champion deploys once they are set.
    """
    chosen = TargetSettings.from_environ(environ).targets
    setting_name = variable(TargetSettings, "targets")
    if chosen is None:
        place = inside_task(environ) if name == "local" else None
        if place is not None:
            return TargetStatus(
                name,
                False,
                f"the local endpoint is no default target inside {place}, where its server "
                f"would die with the task ({setting_name} is unset); serve it with `make serve` "
                "on a machine that stays up",
            )
        return TargetStatus(name, configured, "" if configured else enable_hint)
    if name not in chosen:
        return TargetStatus(
            name, False, f"{setting_name}={','.join(chosen)} leaves {name} out; add it to enable it"
        )
    if not configured:
        missing = enable_hint.removeprefix(UNCONFIGURED)
        return TargetStatus(
            name, False, f"{setting_name} names {name}, which is not configured: {missing}", True
        )
    return TargetStatus(name, True, named=True)


def never_skipped(environ: Mapping[str, str] | None = None) -> tuple[TargetName, ...]:
    """The targets whose deployment here either deploys or fails, never skips: the ones
    `PENGUINS_TARGETS` names, or, unset, the local endpoint outside a task. (Whether a cloud
    target is configured is its resource's to say, and unset, an unconfigured one skips.)"""
    chosen = TargetSettings.from_environ(environ).targets
    if chosen is not None:
        return chosen
    return () if inside_task(environ) else ("local",)


def describe_selection(environ: Mapping[str, str] | None = None) -> str:
    """The targets `PENGUINS_TARGETS` selects here, in words, for a description."""
    chosen = TargetSettings.from_environ(environ).targets
    setting_name = variable(TargetSettings, "targets")
    if chosen is not None:
        return f"{setting_name}={','.join(chosen)}"
    place = inside_task(environ)
    if place is not None:
        return (
            f"{setting_name} unset, inside {place}: every configured cloud target, and not the "
            "local endpoint, whose server would die with the task"
        )
    return f"{setting_name} unset: the local endpoint and every configured cloud target"
