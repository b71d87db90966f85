"""Schedules: production retrains on a clock, as the reference's Step Functions trigger does.

Each schedule is stopped in local mode, where nothing should start training behind a
user's back, and running where `PENGUINS_SCHEDULES=on` (the production stacks set it). A
user can still start or stop one in the UI; that choice is kept in the instance.
"""

import os
from collections.abc import Mapping

import dagster as dg

from penguins_platform import defaults
from penguins_platform.defs.jobs import monitoring_job, training_job

SCHEDULES_VARIABLE = "PENGUINS_SCHEDULES"
ON_VALUES = frozenset({"on", "true", "1", "yes"})


def automation_on(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `PENGUINS_SCHEDULES` turns on what starts runs by itself: the schedules, and
    the sensor that requests retraining."""
    value = (os.environ if environ is None else environ).get(SCHEDULES_VARIABLE, "")
    return value.strip().lower() in ON_VALUES


def default_status(environ: Mapping[str, str] | None = None) -> dg.DefaultScheduleStatus:
    """RUNNING where `PENGUINS_SCHEDULES` says on, STOPPED otherwise."""
    if automation_on(environ):
        return dg.DefaultScheduleStatus.RUNNING
    return dg.DefaultScheduleStatus.STOPPED


training_schedule = dg.ScheduleDefinition(
    name="training_schedule",
    job=training_job,
    cron_schedule=os.environ.get("PENGUINS_TRAINING_SCHEDULE") or defaults.TRAINING_SCHEDULE_CRON,
    execution_timezone=os.environ.get("PENGUINS_SCHEDULE_TIMEZONE") or defaults.SCHEDULE_TIMEZONE,
    default_status=default_status(),
    description=(
        "Retrain on the latest data. A model that passes its checks is registered, and the "
        "deployment sensor then rolls it out. Weekly by default (PENGUINS_TRAINING_SCHEDULE)."
    ),
)

monitoring_schedule = dg.ScheduleDefinition(
    name="monitoring_schedule",
    job=monitoring_job,
    cron_schedule=os.environ.get("PENGUINS_MONITORING_SCHEDULE")
    or defaults.MONITORING_SCHEDULE_CRON,
    execution_timezone=os.environ.get("PENGUINS_SCHEDULE_TIMEZONE") or defaults.SCHEDULE_TIMEZONE,
    default_status=default_status(),
    description=(
        "Evaluate production: the newest captured rows, their labels, drift and accuracy "
        "against the training data, and the capture store's retention when one is set. "
        "Hourly by default (PENGUINS_MONITORING_SCHEDULE)."
    ),
)
