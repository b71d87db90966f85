"""The weekly training schedule: off where it runs by default, on where production says so."""

import datetime
import json
import os
import subprocess
import sys

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from penguins_platform import defaults
from penguins_platform.definitions import defs
from penguins_platform.defs.schedules import default_status, training_schedule
from penguins_platform.settings import AutomationSettings, variable, variables
from penguins_platform_tests.conftest import REPO_ROOT

SCHEDULES_VARIABLE = variable(AutomationSettings, "schedules")
# The variables the schedule module reads when it is imported.
SCHEDULE_VARIABLES = tuple(variables(AutomationSettings).values())


def _status(environ: dict[str, str]) -> dg.DefaultScheduleStatus:
    return default_status(AutomationSettings.from_environ(environ))


def _loaded_schedule(**variables: str) -> dict:
    """The training schedule as a fresh process loads the definitions with `variables`."""
    return _probe(
        "s = defs.resolve_schedule_def('training_schedule'); "
        "print(json.dumps({'status': s.default_status.value, 'cron': s.cron_schedule, "
        "'job': s.job_name}))",
        variables,
    )


def _probe(code: str, variables: dict[str, str]) -> dict:
    """What `code` prints as JSON after a fresh process loads the definitions."""
    probe = "import json; from penguins_platform.definitions import defs; " + code
    env = {k: v for k, v in os.environ.items() if k not in SCHEDULE_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", probe], env={**env, **variables}, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_default_is_weekly_on_mondays_at_three_utc():
    assert training_schedule.cron_schedule == defaults.TRAINING_SCHEDULE_CRON
    assert training_schedule.execution_timezone == defaults.SCHEDULE_TIMEZONE == "UTC"
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC).timestamp()
    ticks = cron_string_iterator(start, training_schedule.cron_schedule, "UTC")
    first, second, third = (next(ticks) for _ in range(3))
    assert first == datetime.datetime(2025, 1, 6, 3, tzinfo=datetime.UTC)
    assert first.weekday() == 0, "Monday"
    assert second - first == third - second == datetime.timedelta(days=7)


def test_the_schedule_is_stopped_unless_schedules_are_on():
    assert training_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert _status({}) == dg.DefaultScheduleStatus.STOPPED
    assert _status({SCHEDULES_VARIABLE: ""}) == dg.DefaultScheduleStatus.STOPPED
    for value in ("off", "OFF", "false", "0", "no"):
        assert _status({SCHEDULES_VARIABLE: value}) == dg.DefaultScheduleStatus.STOPPED
    for value in ("on", "ON", " true ", "1", "yes"):
        assert _status({SCHEDULES_VARIABLE: value}) == dg.DefaultScheduleStatus.RUNNING


def test_a_switch_that_is_neither_on_nor_off_is_refused_naming_its_variable():
    """A typo must not quietly leave production's schedules stopped."""
    import pydantic

    with pytest.raises(pydantic.ValidationError, match=rf"{SCHEDULES_VARIABLE}\n.*boolean"):
        AutomationSettings.from_environ({SCHEDULES_VARIABLE: "maybe"})


def test_production_settings_start_the_schedule_on_its_own_cron():
    """PENGUINS_SCHEDULES and PENGUINS_TRAINING_SCHEDULE are read when the definitions load,
    so a process that loads them with those variables is what the daemon sees."""
    loaded = _loaded_schedule(PENGUINS_SCHEDULES="on", PENGUINS_TRAINING_SCHEDULE="*/15 * * * *")
    assert loaded == {"status": "RUNNING", "cron": "*/15 * * * *", "job": "training_job"}


def test_the_schedule_targets_the_training_job():
    assert training_schedule.job_name == "training_job"
    assert defs.resolve_schedule_def("training_schedule").job_name == "training_job"


def test_a_tick_requests_one_training_run_that_launches_with_the_defaults():
    tick = datetime.datetime(2025, 1, 6, 3, tzinfo=datetime.UTC)
    data = training_schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    assert data.skip_message is None
    [request] = data.run_requests or []
    # A request without a job name runs the schedule's own job.
    assert request.job_name in (None, "training_job")
    assert request.tags["dagster/schedule_name"] == "training_schedule"
    job = defs.resolve_job_def("training_job")
    config = dg.validate_run_config(job, request.run_config)
    assert config["ops"]["trained_model"]["config"]["epochs"] == defaults.EPOCHS


def _loaded_automation(**variables: str) -> dict:
    """The monitoring schedule and the retraining sensor as a fresh process loads them."""
    return _probe(
        "s = defs.resolve_schedule_def('monitoring_schedule'); "
        "r = defs.resolve_sensor_def('retraining_sensor'); "
        "print(json.dumps({'schedule': s.default_status.value, 'cron': s.cron_schedule, "
        "'sensor': r.default_status.value, 'job': s.job_name}))",
        variables,
    )


def test_monitoring_runs_hourly_and_retraining_waits_for_production_settings():
    schedule = defs.resolve_schedule_def("monitoring_schedule")
    assert schedule.cron_schedule == defaults.MONITORING_SCHEDULE_CRON == "0 * * * *"
    assert schedule.job_name == "monitoring_job"
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC).timestamp()
    ticks = cron_string_iterator(start, schedule.cron_schedule, "UTC")
    first, second = next(ticks), next(ticks)
    assert second - first == datetime.timedelta(hours=1)
    # Locally nothing starts by itself: the schedule and the retraining sensor are stopped.
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    sensor = defs.resolve_sensor_def("retraining_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == "training_job"


def test_production_settings_start_monitoring_and_retraining():
    loaded = _loaded_automation(PENGUINS_SCHEDULES="on", PENGUINS_MONITORING_SCHEDULE="*/5 * * * *")
    assert loaded == {
        "schedule": "RUNNING",
        "cron": "*/5 * * * *",
        "sensor": "RUNNING",
        "job": "monitoring_job",
    }
