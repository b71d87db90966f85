"""Reads of Dagster's event log and log records, behind one small adapter.

The platform reads what runs recorded in a few places: registration re-reads the accuracy
gate, the CLI summarises a failed run and reports what a run materialized, and the CLI's
console shows only the platform's own messages. Those reads touch Dagster's record shapes
(`event_specific_data`, storage ids, log-record metadata), which change between releases
more than its public API does, so they all live here, with a test of their own.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo


@dataclass(frozen=True)
class CheckOutcome:
    """The latest evaluation of an asset check."""

    passed: bool
    description: str
    metadata: dict[str, object]
    run_id: str
    # The storage id of the materialization it evaluated, to tell whether it checked the
    # latest one.
    materialization_id: int | None


def latest_check_outcome(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey
) -> CheckOutcome | None:
    """The latest evaluation of `check_key`, or None when it never completed."""
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key]).get(
        check_key
    )
    if record is None or record.event is None or record.event.dagster_event is None:
        return None
    evaluation = record.event.dagster_event.event_specific_data
    if not isinstance(evaluation, dg.AssetCheckEvaluation):
        return None
    target = evaluation.target_materialization_data
    return CheckOutcome(
        passed=evaluation.passed,
        description=evaluation.description or "",
        metadata={key: value.value for key, value in evaluation.metadata.items()},
        run_id=record.run_id,
        materialization_id=target.storage_id if target is not None else None,
    )


@dataclass(frozen=True)
class CheckEvaluation:
    """One completed evaluation of an asset check, from the instance's event log."""

    storage_id: int
    passed: bool
    description: str
    run_id: str
    timestamp: float


def check_history(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, limit: int
) -> list[CheckEvaluation]:
    """The newest `limit` completed evaluations of `check_key`, newest first. Planned ones
    that never ran (a run that had nothing to judge) are left out."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    records = instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=limit, status={Status.SUCCEEDED, Status.FAILED}
    )
    evaluations = []
    for record in records:
        event = record.event.dagster_event if record.event else None
        evaluation = event.event_specific_data if event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            evaluations.append(
                CheckEvaluation(
                    storage_id=record.id,
                    passed=evaluation.passed,
                    description=evaluation.description or "",
                    run_id=record.run_id,
                    timestamp=record.create_timestamp,
                )
            )
    return evaluations


def latest_materialization_id(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> int | None:
    """The storage id of the latest materialization of `asset_key`, or None."""
    records = instance.fetch_materializations(asset_key, limit=1).records
    return records[0].storage_id if records else None


def latest_data_version(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> str | None:
    """The data version that the latest materialization of `asset_key` recorded."""
    event = instance.get_latest_materialization_event(asset_key)
    if event is None or event.asset_materialization is None:
        return None
    return (event.asset_materialization.tags or {}).get("dagster/data_version")


def materialized_metadata(
    result: dg.ExecuteInProcessResult, asset_key: dg.AssetKey
) -> dict[str, object] | None:
    """The metadata values of the run's materialization of `asset_key`, or None."""
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key == asset_key:
            return {key: value.value for key, value in materialization.metadata.items()}
    return None


def failure_reasons(events: Sequence[dg.DagsterEvent]) -> list[str]:
    """One line per reason a run failed: a step's own error, or else its failed checks.

    A step that raised says why itself, so its checks (which then say "not run", or repeat
    the error) are left out; a step failed by a blocking check is represented by the checks.
    """
    checks: list[tuple[str, str]] = []
    raised: dict[str, str] = {}
    run_level: list[str] = []
    for event in events:
        kind = event.event_type_value
        if kind == "ASSET_CHECK_EVALUATION" and not event.asset_check_evaluation_data.passed:
            evaluation = event.asset_check_evaluation_data
            asset = evaluation.asset_key.to_user_string()
            checks.append(
                (asset, f"check {asset}:{evaluation.check_name} failed: {evaluation.description}")
            )
        elif kind == "STEP_FAILURE":
            error = _root_error(event.step_failure_data.error)
            if error is not None and error.cls_name != "DagsterAssetCheckFailedError":
                # Dagster records a step's failure with its step key; the type allows none.
                step = event.step_key or "unknown"
                raised[step] = f"step {step} failed: {_message(error)}"
        elif kind == "RESOURCE_INIT_FAILURE":
            error = _root_error(event.engine_event_data.error)
            if error is not None:
                run_level.append(f"resources could not start: {_message(error)}")
        elif kind == "RUN_FAILURE" and event.message and "maximum runtime" in event.message:
            run_level.append(event.message)
    reasons = run_level + [line for asset, line in checks if asset not in raised]
    reasons += list(raised.values())
    return reasons or ["the run failed before any step; `--verbose` shows Dagster's log"]


def _root_error(error: SerializableErrorInfo | None) -> SerializableErrorInfo | None:
    """Skip Dagster's wrapper errors down to the exception the user's code raised."""
    while (
        error is not None
        and (error.cls_name or "").startswith("Dagster")
        and error.cause is not None
    ):
        error = error.cause
    return error


def _message(error: SerializableErrorInfo) -> str:
    """The error's message without its class path (`penguins_platform.ml.cleaning.…Error: `)."""
    if error.cls_name is None:  # an error recorded without its class says only its message
        return error.message.strip()
    prefix = rf"^(?:[\w.]+\.)?{re.escape(error.cls_name)}: "
    return re.sub(prefix, "", error.message.strip())


# Dagster's own notes that reach the step's log like the platform's messages do: a check a
# step left unevaluated (no production data to judge) is not news in the terminal.
_DAGSTER_NOTES = re.compile(r"op '[\w.]+' did not yield or return expected outputs")


class _PlatformMessages(logging.Handler):
    """Prints progress that the platform's code logs (`context.log.info`, `.warning`), one
    line each. Dagster's events, and errors with their stack traces, are left out: the CLI
    summarises a failure at the end."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        if meta is None or meta.get("dagster_event") is not None or record.levelno >= logging.ERROR:
            return
        message = meta.get("orig_message", record.getMessage())
        if _DAGSTER_NOTES.match(message):
            return
        step = meta.get("step_key")
        where = f"{step}: " if step else ""
        print(f"  {where}{message}", file=sys.stderr)


@dg.logger(
    # The console logger's schema, so a run config written for one fits the other.
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="penguins_platform"),
    },
    description="The CLI's console: the platform's own messages, one line each.",
)
def platform_messages_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    logger = logging.getLogger(f"{config['name']}.console")
    logger.setLevel(config["log_level"].upper())
    logger.propagate = False
    if not any(isinstance(h, _PlatformMessages) for h in logger.handlers):
        logger.addHandler(_PlatformMessages())
    return logger


def with_quiet_console(job: dg.JobDefinition) -> dg.JobDefinition:
    """`job` with its console logger replaced by `platform_messages_logger`."""
    return job.with_logger_defs({"console": platform_messages_logger})


def latest_materialization_metadata(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey
) -> dict[str, object]:
    """The metadata values of the latest materialization of `asset_key`; empty when none."""
    event = instance.get_latest_materialization_event(asset_key)
    if event is None or event.asset_materialization is None:
        return {}
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}
