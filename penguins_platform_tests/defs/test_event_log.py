"""The adapter over Dagster's event log: the reads most likely to break on a Dagster upgrade.

Tiny assets stand in for the lineage, so each read is checked against records that a real
instance wrote.
"""

import dagster as dg
import pytest

from penguins_platform.defs import event_log


class ValueConfig(dg.Config):
    value: int = 1
    fail_with: str = ""


@dg.asset
def measured(context: dg.AssetExecutionContext, config: ValueConfig) -> dg.MaterializeResult:
    context.log.info(f"measured {config.value}")
    context.log.error("an error logged by the asset")
    if config.fail_with:
        raise ValueError(config.fail_with)
    return dg.MaterializeResult(
        value=config.value,
        data_version=dg.DataVersion(f"v{config.value}"),
        metadata={"value": config.value},
    )


@dg.asset_check(asset=measured, blocking=True)
def is_positive(measured: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=measured > 0, description=f"value {measured}", metadata={"value": measured}
    )


class FailingResource(dg.ConfigurableResource):
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        raise ConnectionError("the store is unreachable")


@dg.asset
def needs_store(store: FailingResource) -> int:
    return 1


def _run(instance, value: int = 1, fail_with: str = "") -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [measured, is_positive],
        instance=instance,
        run_config=dg.RunConfig(ops={"measured": ValueConfig(value=value, fail_with=fail_with)}),
        raise_on_error=False,
    )


def test_the_latest_check_outcome_and_the_materialization_it_checked(instance):
    assert event_log.latest_check_outcome(instance, is_positive.check_key) is None
    passed = _run(instance, value=3)
    outcome = event_log.latest_check_outcome(instance, is_positive.check_key)
    assert outcome is not None
    assert (outcome.passed, outcome.description, outcome.run_id) == (True, "value 3", passed.run_id)
    assert outcome.metadata == {"value": 3}
    assert outcome.materialization_id == event_log.latest_materialization_id(instance, measured.key)

    _run(instance, value=-1)
    outcome = event_log.latest_check_outcome(instance, is_positive.check_key)
    assert outcome is not None
    assert (outcome.passed, outcome.description) == (False, "value -1")


def test_the_latest_data_version_and_metadata_of_a_run(instance):
    assert event_log.latest_data_version(instance, measured.key) is None
    assert event_log.latest_materialization_id(instance, measured.key) is None
    result = _run(instance, value=5)
    assert event_log.latest_data_version(instance, measured.key) == "v5"
    metadata = event_log.materialized_metadata(result, measured.key)
    assert metadata is not None
    assert metadata["value"] == 5
    assert event_log.materialized_metadata(result, dg.AssetKey("elsewhere")) is None


def test_a_materialization_reported_without_tags_has_no_data_version(instance):
    instance.report_runless_asset_event(dg.AssetMaterialization(measured.key))
    assert event_log.latest_data_version(instance, measured.key) is None


def test_failure_reasons_name_the_error_without_its_class_path(instance):
    result = _run(instance, fail_with="column 'x' holds text")
    assert event_log.failure_reasons(result.all_events) == [
        "step measured failed: column 'x' holds text"
    ]


def test_failure_reasons_read_an_error_recorded_without_its_class_name():
    from dagster._core.events import StepFailureData
    from dagster_shared.error import SerializableErrorInfo

    error = SerializableErrorInfo("column 'x' holds text", stack=[], cls_name=None)
    failure = dg.DagsterEvent(
        event_type_value="STEP_FAILURE",
        job_name="measured_job",
        step_key="measured",
        event_specific_data=StepFailureData(error=error, user_failure_data=None),
    )
    assert event_log.failure_reasons([failure]) == ["step measured failed: column 'x' holds text"]


def test_failure_reasons_list_a_failed_blocking_check(instance):
    result = _run(instance, value=-2)
    assert event_log.failure_reasons(result.all_events) == [
        "check measured:is_positive failed: value -2"
    ]


def test_failure_reasons_name_a_resource_that_could_not_start(instance):
    result = dg.materialize(
        [needs_store], instance=instance, resources={"store": FailingResource()},
        raise_on_error=False,
    )  # fmt: skip
    assert event_log.failure_reasons(result.all_events) == [
        "resources could not start: the store is unreachable"
    ]


def test_the_quiet_console_prints_the_platforms_progress_only(instance, capsys):
    job = dg.define_asset_job("measured_job", selection=[measured])
    defs = dg.Definitions(assets=[measured, is_positive], jobs=[job])
    quiet = event_log.with_quiet_console(defs.resolve_job_def("measured_job"))
    quiet.execute_in_process(
        run_config={
            "ops": {"measured": {"config": {"value": 4}}},
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        },
        instance=instance,
    )
    printed = capsys.readouterr()
    assert printed.err.splitlines() == ["  measured: measured 4"]
    assert printed.out == ""


@pytest.mark.parametrize("level,shown", [("WARNING", False), ("INFO", True)])
def test_the_quiet_console_honours_the_log_level(instance, capsys, level, shown):
    job = dg.define_asset_job("measured_job", selection=[measured])
    defs = dg.Definitions(assets=[measured], jobs=[job])
    event_log.with_quiet_console(defs.resolve_job_def("measured_job")).execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": level}}}},
        instance=instance,
    )
    assert ("measured 1" in capsys.readouterr().err) is shown
