"""Every environment variable the platform reads, each declared once, beside its setting.

A setting is a field of a settings class, declared with `setting(VARIABLE, default,
description)`. One settings class per concern: where MLflow is (`tracking/store.py`), the
local endpoint (`serving/settings.py`), which targets a deployment uses, SageMaker and Azure
(`deploy/`), monitoring (`monitoring/settings.py`), and below, what starts runs by itself
and how steps execute.
From that one declaration:

- a Dagster resource that mixes in a settings class takes each variable that is set as an
  `EnvVar` (`defs/resources.py`), so the UI shows which variable set a value, never the value;
- the settings read where the code location loads (schedules, sensors, the executor) come from
  the environment through pydantic-settings, and a wrong value fails naming its variable;
- hints and errors name a variable through `variable(...)`, never by spelling it out;
- the README's tables of variables are generated (`python -m penguins_platform settings`),
  and a test keeps them current.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

from penguins_platform import defaults
from penguins_platform.project import PROJECT_ROOT


def setting(variable: str, default: Any, description: str, **constraints: Any) -> Any:
    """A field that the environment variable `variable` sets, with its default and what it
    means (the UI's resource page and the README's tables show both)."""
    return Field(default, description=description, validation_alias=variable, **constraints)


class Settings(BaseModel):
    """A settings class that a Dagster resource mixes in: built from field names, like any
    config; `from_env` (`defs/resources.py`) maps the variables that are set onto EnvVars."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)


class EnvironmentSettings(BaseSettings):
    """A settings class read from the environment itself, when the code location loads.

    Only the declared variables are read (never a variable named like a field), and an empty
    one counts as unset.
    """

    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="ignore")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings from `environ` (the process's environment when None), read as from
        the environment: only the declared variables, an empty one as unset."""
        if environ is None:
            return cls()
        names = variables(cls).values()
        values = {name: environ[name] for name in names if environ.get(name)}
        # `environ` as the only source: `model_validate` runs BaseSettings' __init__, which
        # would read the process's environment under it.
        return cls(_build_sources=((InitSettingsSource(cls, values),), values))


def variables(model: type[BaseModel]) -> dict[str, str]:
    """The environment variable of each field of `model` that has one, by field name."""
    return {
        name: info.validation_alias
        for name, info in model.model_fields.items()
        if isinstance(info.validation_alias, str)
    }


def variable(model: type[BaseModel], field: str) -> str:
    """The environment variable that sets `field` of `model`."""
    return variables(model)[field]


# How every enable hint starts; what follows it says what to set.
UNCONFIGURED = "Disabled until configured: "


def enable_hint(model: type[BaseModel], required: tuple[str, ...], note: str = "") -> str:
    """How to turn on a target that is off until `required` fields are set, naming every
    variable of `model`: the required ones, then the optional ones."""
    names = variables(model)
    needed = [names[field] for field in required]
    optional = [name for field, name in names.items() if field not in required]
    listed = f"{', '.join(needed[:-1])} and {needed[-1]}" if len(needed) > 1 else needed[0]
    text = f"{UNCONFIGURED}set {listed}"
    text += f" (optionally {', '.join(optional)})" if optional else ""
    return f"{text}{'; ' + note if note else ''}."


class AutomationSettings(EnvironmentSettings):
    """What starts runs by itself: the schedules and the sensors, read where the code loads."""

    schedules: bool = setting(
        "PENGUINS_SCHEDULES",
        False,
        "`on` starts the schedules and the retraining sensor (the production stacks set it); "
        "off, they start stopped, and the UI's Automation page starts them.",
    )
    training_schedule: str = setting(
        "PENGUINS_TRAINING_SCHEDULE", defaults.TRAINING_SCHEDULE_CRON, "When training runs (cron)."
    )
    monitoring_schedule: str = setting(
        "PENGUINS_MONITORING_SCHEDULE",
        defaults.MONITORING_SCHEDULE_CRON,
        "When monitoring runs (cron).",
    )
    schedule_timezone: str = setting(
        "PENGUINS_SCHEDULE_TIMEZONE", defaults.SCHEDULE_TIMEZONE, "The schedules' time zone."
    )
    sensor_interval: int = setting(
        "PENGUINS_SENSOR_INTERVAL",
        defaults.SENSOR_INTERVAL_SECONDS,
        "Seconds between the deployment sensor's looks at the registry.",
        ge=1,
    )
    drift_persistence: int = setting(
        "PENGUINS_DRIFT_PERSISTENCE",
        defaults.DRIFT_PERSISTENCE,
        "Drifted evaluations in a row that request retraining.",
        ge=1,
    )
    retraining_cooldown_hours: float = setting(
        "PENGUINS_RETRAINING_COOLDOWN_HOURS",
        defaults.RETRAINING_COOLDOWN_HOURS,
        "At most one retraining request per this many hours.",
        ge=0,
    )

    @field_validator("schedules", mode="before")
    @classmethod
    def _forgive_spaces(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


class ExecutionSettings(EnvironmentSettings):
    """How a run executes its steps, read where the code loads (see `defs/executors.py`)."""

    executor: str = setting(
        "PENGUINS_EXECUTOR",
        "in_process",
        "How a run executes its steps: `in_process`, `multiprocess` (a process a step), `ecs` "
        "(a task a step) or `k8s` (a pod a step).",
    )


def display_default(value: object) -> str:
    """A default as the README shows it: unset for None, on/off for a switch, and a folder
    inside the checkout relative to it (every path default is a folder: a state or report
    folder), so the table reads the same in any clone."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, str) and Path(value).is_relative_to(PROJECT_ROOT):
        return f"`{Path(value).relative_to(PROJECT_ROOT)}/`"
    return f"`{value}`"


def markdown_table(model: type[BaseModel]) -> str:
    """The README's table of `model`'s variables: variable, default, meaning."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for field, name in variables(model).items():
        info = model.model_fields[field]
        default = display_default(info.get_default(call_default_factory=True))
        lines.append(f"| `{name}` | {default} | {info.description} |")
    return "\n".join(lines)
