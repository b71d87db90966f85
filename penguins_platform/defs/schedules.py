"""Schedules: production retrains on a clock, as the reference's Step Functions trigger does.

Each schedule is stopped in local mode, where nothing should start training behind a
user's back, and running where `PENGUINS_SCHEDULES=on` (the production stacks set it; see
`AutomationSettings`). A
user can still start or stop one in the UI; that choice is kept in the instance.
"""

import dagster as dg

from penguins_platform.defs.jobs import monitoring_job, training_job
from penguins_platform.settings import AutomationSettings, variable

# Read once, where the code location loads; the sensors and the monitoring checks read it too.
AUTOMATION = AutomationSettings()


def default_status(settings: AutomationSettings) -> dg.DefaultScheduleStatus:
    """RUNNING where the settings turn automation on, STOPPED otherwise."""
    if settings.schedules:
        return dg.DefaultScheduleStatus.RUNNING
    return dg.DefaultScheduleStatus.STOPPED


training_schedule = dg.ScheduleDefinition(
    name="training_schedule",
    job=training_job,
    cron_schedule=AUTOMATION.training_schedule,
    execution_timezone=AUTOMATION.schedule_timezone,
    default_status=default_status(AUTOMATION),
    description=(
        "Retrain on the latest data. A model that passes its checks is registered, and the "
        "deployment sensor then rolls it out. Weekly by default "
        f"({variable(AutomationSettings, 'training_schedule')})."
    ),
)

monitoring_schedule = dg.ScheduleDefinition(
    name="monitoring_schedule",
    job=monitoring_job,
    cron_schedule=AUTOMATION.monitoring_schedule,
    execution_timezone=AUTOMATION.schedule_timezone,
    default_status=default_status(AUTOMATION),
    description=(
        "Evaluate production: the newest captured rows, their labels, drift and accuracy "
        "against the training data, and the capture store's retention when one is set. "
        f"Hourly by default ({variable(AutomationSettings, 'monitoring_schedule')})."
    ),
)
