"""Monitoring stage: what production saw, its ground truth, and how both compare with training.

`production_data` reads the newest rows each deployment target captured (the local endpoint's
capture store, SageMaker's data capture in S3) through the targets themselves, so the lineage
runs on from the endpoints: data → model → endpoint → production health.
`ground_truth_labels` labels the rows that have no label yet and writes the labels back to
where the rows live, so labeling twice changes nothing. `monitoring_report` is an Evidently
report against the training data, whose numbers become the checks that close the loop: a
failed `production_accuracy`, or drift that persists, requests retraining (`defs/sensors.py`).

No production data, or no labels yet, is a normal state of a new deployment: the assets then
materialize and say so, and the checks that have nothing to judge are left unevaluated.
"""

import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs import metadata
from penguins_platform.defs.deployment import local_endpoint
from penguins_platform.defs.resources import (
    LocalEndpoint,
    MlflowTracking,
    Monitoring,
    SageMakerEndpoint,
)
from penguins_platform.project import resolve_path

if TYPE_CHECKING:
    import pandas as pd

    from penguins_platform.monitoring.production import (
        CaptureSource,
        ProductionBatch,
        Retention,
    )
    from penguins_platform.monitoring.report import MonitoringSummary

# Annotations stay evaluated here (no `from __future__ import annotations`): Dagster reads the
# config and resource classes from the signatures. Data inputs stay unannotated, since pandas
# is imported only inside the bodies.

GROUP = "monitoring"
NO_PRODUCTION_DATA = (
    "no production data: no endpoint has captured a request yet; send some with "
    "`make traffic`, then materialize again"
)
NO_LABELED_DATA = "no labeled data: no captured row has a ground-truth label yet"
# Which source a production row came from, so its label goes back to the same place.
SOURCE_COLUMN = "source"
REPORT_KEY = dg.AssetKey("monitoring_report")


class CaptureReadError(RuntimeError):
    """A capture source could not be read; nothing was labeled or changed. Names the source."""


class ProductionDataConfig(dg.Config):
    rows: int = Field(
        default=defaults.MONITORING_ROWS, ge=1, description="Newest captured rows to evaluate."
    )
    recent_hours: float = Field(
        default=defaults.RECENT_HOURS,
        gt=0,
        description="capture_health fails when nothing was captured within this many hours.",
    )


class MonitoringReportConfig(dg.Config):
    drift_share: float = Field(
        default=defaults.DRIFT_SHARE,
        ge=0.0,
        le=1.0,
        description="Share of drifted features above which feature_drift fails.",
    )
    accuracy_threshold: float = Field(
        default=defaults.PRODUCTION_ACCURACY,
        ge=0.0,
        le=1.0,
        description="Accuracy on labeled production rows below which production_accuracy fails.",
    )


def capture_sources(
    model_name: str,
    endpoint: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    log: logging.Logger,
) -> dict[str, "CaptureSource"]:
    """Every enabled target's captured traffic, by target name."""
    sources: dict[str, CaptureSource] = {}
    local = endpoint.target(model_name, log).capture_source()
    if local is not None:
        sources["local"] = local
    if sagemaker.enabled:
        remote = sagemaker.target(model_name, log).capture_source()
        if remote is not None:
            sources["sagemaker"] = remote
    return sources


def newest_rows(batches: dict[str, "ProductionBatch"], rows: int) -> "pd.DataFrame":
    """The newest `rows` rows over all sources, oldest first, each tagged with its source."""
    import pandas as pd

    from penguins_platform.monitoring.production import PRODUCTION_COLUMNS

    frames = [batch.rows.assign(**{SOURCE_COLUMN: name}) for name, batch in batches.items()]
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame(columns=[*PRODUCTION_COLUMNS, SOURCE_COLUMN])
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    combined = combined.sort_values("captured_at", kind="stable").tail(rows)
    return combined.reset_index(drop=True)


def _time_range(rows: "pd.DataFrame") -> dict[str, metadata.Entry]:
    if rows.empty:
        return {}
    return {
        "oldest_captured_at": rows["captured_at"].iloc[0].isoformat(),
        "newest_captured_at": rows["captured_at"].iloc[-1].isoformat(),
    }


@dg.asset(
    group_name=GROUP,
    # The local endpoint only: a cloud target that is not configured is skipped, and Dagster
    # skips whatever depends on a skipped asset in the same run. SageMaker's capture is still
    # read whenever that target is enabled.
    deps=[local_endpoint],
    kinds={"pandas", "sqlite"},
    check_specs=[
        dg.AssetCheckSpec(
            "capture_health",
            asset="production_data",
            description="Requests arrive, and the endpoints capture every one: no write "
            "failures, spilled or lost rows, and no corrupt rows in the store.",
        )
    ],
)
def production_data(
    context: dg.AssetExecutionContext,
    config: ProductionDataConfig,
    endpoint: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    monitoring: Monitoring,
    mlflow: MlflowTracking,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The newest captured predictions of every enabled endpoint: features, prediction,
    confidence, the version that answered, and the label once one is known.

    When a retention is configured (PENGUINS_CAPTURE_RETENTION_DAYS / _ROWS), older rows are
    deleted first and counted here, so nothing disappears unseen.
    """
    sources = capture_sources(mlflow.registered_model_name, endpoint, sagemaker, context.log)
    retention = monitoring.retention()
    now = datetime.now(UTC)
    removed = {}
    batches: dict[str, ProductionBatch] = {}
    health = {}
    for name, source in sources.items():
        try:
            if retention.enabled:
                removed[name] = source.apply_retention(retention, now)
            batches[name] = source.read_newest(config.rows)
            health[name] = source.health()
        except Exception as error:
            raise CaptureReadError(f"could not read the {source.label}: {error}") from error
    rows = newest_rows(batches, config.rows)
    skipped = sum(batch.skipped for batch in batches.values())
    examples = [example for batch in batches.values() for example in batch.skipped_examples]
    if skipped:
        context.log.warning(
            f"skipped {skipped} corrupt captured rows; for example: {'; '.join(examples[:3])}"
        )
    if retention.enabled:
        context.log.info(
            f"retention ({_describe_retention(retention)}) removed "
            + ", ".join(f"{count} rows from the {name} store" for name, count in removed.items())
        )
    counters = endpoint.target(mlflow.registered_model_name, context.log).capture_counters()
    check = capture_health(rows, health, counters, skipped, config.recent_hours, now)
    if rows.empty:
        context.log.warning(NO_PRODUCTION_DATA)
    versions = rows["model_version"].value_counts().sort_index().to_dict()
    # An Output, not a MaterializeResult: Dagster compares a MaterializeResult's value with
    # a sentinel, which a DataFrame answers element by element.
    yield dg.Output(
        rows,
        metadata={
            "status": NO_PRODUCTION_DATA if rows.empty else f"{len(rows)} rows",
            "row_count": len(rows),
            "labeled_count": int(rows["target"].notna().sum()),
            **_time_range(rows),
            "versions_seen": dg.MetadataValue.json({str(k): int(v) for k, v in versions.items()}),
            "sources": dg.MetadataValue.json(
                {name: source.label for name, source in sources.items()}
            ),
            "corrupt_rows_skipped": skipped,
            **(
                {"corrupt_row_examples": dg.MetadataValue.md(_bullets(examples))} if skipped else {}
            ),
            "retention": _describe_retention(retention) if retention.enabled else "off",
            "retention_removed_rows": sum(removed.values()),
            **({"newest_rows": metadata.preview_table(rows.iloc[::-1])} if len(rows) else {}),
        },
    )
    yield check


def _describe_retention(retention: "Retention") -> str:
    parts = []
    if retention.max_age_days is not None:
        parts.append(f"{retention.max_age_days:g} days")
    if retention.max_rows is not None:
        parts.append(f"{retention.max_rows} rows")
    return "keep at most " + " and ".join(parts) if parts else "off"


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines[:10])


def capture_health(
    rows: "pd.DataFrame",
    health: dict[str, object],
    counters: dict[str, int] | None,
    skipped: int,
    recent_hours: float,
    now: datetime,
) -> dg.AssetCheckResult:
    """Recent requests exist, and nothing failed to be captured: spill files, the running
    endpoint's write failures and lost rows, and corrupt rows all count against it."""
    problems = []
    newest = max((h.newest_at for h in health.values() if h.newest_at is not None), default=None)
    if newest is None:
        problems.append("no request was ever captured")
    elif now - newest > timedelta(hours=recent_hours):
        problems.append(f"no request captured in the last {recent_hours:g} h (newest {newest})")
    spilled = sum(h.spilled_rows for h in health.values())
    if spilled:
        problems.append(f"{spilled} rows spilled to the capture store's spill file")
    live = counters or {}
    for name, label in (
        ("write_failures", "capture write failures"),
        ("lost", "rows lost by the capture writer"),
        ("queue_errors", "rows the endpoint could not queue for capture"),
    ):
        if live.get(name):
            problems.append(f"{live[name]} {label} since the endpoint started")
    if skipped:
        problems.append(f"{skipped} corrupt rows skipped")
    return dg.AssetCheckResult(
        asset_key="production_data",
        check_name="capture_health",
        passed=not problems,
        description="; ".join(problems) or f"{len(rows)} recent rows, every request captured",
        metadata={
            "newest_captured_at": newest.isoformat() if newest else "never",
            "spilled_rows": spilled,
            "corrupt_rows_skipped": skipped,
            **{f"endpoint_{name}": value for name, value in live.items()},
        },
    )


@dg.asset(group_name=GROUP, kinds={"pandas"})
def ground_truth_labels(
    context: dg.AssetExecutionContext,
    production_data,
    endpoint: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    monitoring: Monitoring,
    mlflow: MlflowTracking,
) -> dg.Output:
    """The production rows with their ground truth: the configured labeler (PENGUINS_LABELER)
    labels the rows that have none yet, and the labels are written back to the store each row
    came from, so a label is given once and kept."""
    rows = production_data.copy()
    unlabeled = rows[rows["target"].isna()]
    already = len(rows) - len(unlabeled)
    written = 0
    if len(unlabeled):
        labels = monitoring.make_labeler()(unlabeled).dropna()
        sources = capture_sources(mlflow.registered_model_name, endpoint, sagemaker, context.log)
        for name, keys in unlabeled.loc[labels.index].groupby(SOURCE_COLUMN)["key"]:
            written += sources[name].write_labels(
                dict(zip(keys, labels.loc[keys.index], strict=True))
            )
        rows.loc[labels.index, "target"] = labels
    labeled = rows[rows["target"].notna()]
    if rows.empty:
        status = NO_PRODUCTION_DATA
    elif labeled.empty:
        status = NO_LABELED_DATA
    else:
        status = f"{len(labeled)} of {len(rows)} rows labeled"
    context.log.info(f"{status}; {written} labels written now ({monitoring.describe_labeler()})")
    agreement = float((labeled["target"] == labeled["prediction"]).mean()) if len(labeled) else None
    return dg.Output(
        rows,
        metadata={
            "status": status,
            "labeler": monitoring.describe_labeler(),
            "labeled_now": written,
            "already_labeled": already,
            "labeled_count": len(labeled),
            "unlabeled_count": len(rows) - len(labeled),
            **({"label_agreement": agreement} if agreement is not None else {}),
        },
    )


def report_path(report_dir: str, run_id: str, now: datetime) -> Path:
    return resolve_path(report_dir) / f"{now:%Y%m%dT%H%M%SZ}-{run_id[:8]}.html"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "monitoring_report",
            group_name=GROUP,
            kinds={"evidently", "html"},
            deps=["ground_truth_labels", "penguins"],
            description="An Evidently report on the production rows against the training "
            "data: a data summary, drift of the six features, and classification quality on "
            "the labeled rows. The HTML is saved as a file and as an MLflow artifact of the "
            "served version's run.",
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "feature_drift",
            asset="monitoring_report",
            description="The share of drifted features stays within drift_share (0.1): "
            "production still looks like the training data. Warns; drift in "
            f"{defaults.DRIFT_PERSISTENCE} evaluations in a row requests retraining.",
        ),
        dg.AssetCheckSpec(
            "production_accuracy",
            asset="monitoring_report",
            description="Accuracy on the labeled production rows stays at or above the "
            "threshold (0.9). A failure requests retraining.",
        ),
    ],
    can_subset=True,
)
def monitoring_report(
    context: dg.AssetExecutionContext,
    config: MonitoringReportConfig,
    ground_truth_labels,
    penguins,
    monitoring: Monitoring,
    mlflow: MlflowTracking,
) -> Iterator[dg.MaterializeResult]:
    from penguins_platform.monitoring.report import build_report

    rows = ground_truth_labels
    if rows.empty:
        context.log.warning(NO_PRODUCTION_DATA)
        yield dg.MaterializeResult(
            asset_key="monitoring_report",
            metadata={"status": NO_PRODUCTION_DATA, "row_count": 0},
        )
        return
    now = datetime.now(UTC)
    html = report_path(monitoring.report_dir, context.run.run_id, now)
    html.parent.mkdir(parents=True, exist_ok=True)
    summary = build_report(penguins, rows, drift_share=config.drift_share, html_path=html)
    served = str(rows["model_version"].iloc[-1])
    artifact = _log_report(context, mlflow, served, html)
    checks = [drift_check(summary, config.drift_share)]
    if summary.accuracy is None:
        context.log.warning(f"{NO_LABELED_DATA}; production_accuracy is not evaluated")
    else:
        checks.append(accuracy_check(summary, config.accuracy_threshold))
    selected = context.selected_asset_check_keys
    yield dg.MaterializeResult(
        asset_key="monitoring_report",
        metadata={
            "status": NO_LABELED_DATA if summary.accuracy is None else f"{summary.rows} rows",
            "row_count": summary.rows,
            "labeled_count": summary.labeled,
            "served_version": served,
            "drift_share": summary.drift_share,
            "drifted_features": dg.MetadataValue.json(summary.drifted_features),
            # One float per feature, so the UI plots each p-value over time.
            **{
                f"drift_p_value/{name}": p
                for name, p in _p_values(summary).items()
                if p is not None
            },
            **_quality_metadata(summary),
            "report_file": dg.MetadataValue.path(str(html)),
            **artifact,
        },
        check_results=[c for c in checks if dg.AssetCheckKey(REPORT_KEY, c.check_name) in selected],
    )


def drift_check(summary: "MonitoringSummary", drift_share: float) -> dg.AssetCheckResult:
    drifted = summary.drifted_features
    return dg.AssetCheckResult(
        asset_key="monitoring_report",
        check_name="feature_drift",
        passed=summary.drift_share <= drift_share,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(drifted)} of {len(summary.p_values)} features drifted"
            + (f" ({', '.join(drifted)})" if drifted else "")
            + f": share {summary.drift_share:.2f} against a bound of {drift_share:g}"
        ),
        metadata={
            "drift_share": summary.drift_share,
            "bound": drift_share,
            "p_values": dg.MetadataValue.json(_p_values(summary)),
            "methods": dg.MetadataValue.json(summary.drift_methods),
        },
    )


def _p_values(summary: "MonitoringSummary") -> dict[str, float | None]:
    """Per-feature p-values; None where a feature had no value to test (NaN is not JSON)."""
    return {name: None if math.isnan(value) else value for name, value in summary.p_values.items()}


def accuracy_check(summary: "MonitoringSummary", threshold: float) -> dg.AssetCheckResult:
    accuracy = summary.accuracy
    return dg.AssetCheckResult(
        asset_key="monitoring_report",
        check_name="production_accuracy",
        passed=accuracy >= threshold,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"accuracy {accuracy:.4f} on {summary.labeled} labeled rows against a "
        f"threshold of {threshold:g}",
        metadata={"accuracy": accuracy, "threshold": threshold, "labeled_rows": summary.labeled},
    )


def _quality_metadata(summary: "MonitoringSummary") -> dict[str, metadata.Entry]:
    if summary.accuracy is None:
        return {}
    from penguins_platform.ml import schema
    from penguins_platform.ml.plots import confusion_matrix_markdown

    per_class = [
        {
            "species": species,
            "precision": summary.precision.get(species),
            "recall": summary.recall.get(species),
        }
        for species in schema.SPECIES
    ]
    return {
        "production_accuracy": summary.accuracy,
        "per_class": metadata.key_value_table(
            per_class, [("species", "string"), ("precision", "float"), ("recall", "float")]
        ),
        "confusion_matrix": dg.MetadataValue.md(
            confusion_matrix_markdown(
                summary.confusion, schema.SPECIES, title="Production confusion matrix"
            )
        ),
    }


def _log_report(
    context: dg.AssetExecutionContext, mlflow: MlflowTracking, version: str, html: Path
) -> dict[str, metadata.Entry]:
    """Attach the report to the run that trained the served version. A registry that cannot
    say which run that is leaves the report as a file only, and the metadata says why."""
    artifact_path = f"monitoring/{html.stem}"
    try:
        run_id = mlflow.client().get_model_version(mlflow.registered_model_name, version).run_id
        mlflow.client().log_artifact(run_id, str(html), artifact_path)
    except Exception as error:
        context.log.warning(f"the report was not logged to MLflow: {error}")
        return {"report_in_mlflow": f"not logged: {str(error)[:200]}"}
    url = f"{mlflow.run_url(run_id)}/artifacts/{artifact_path}/{html.name}"
    return {"report_in_mlflow": dg.MetadataValue.url(url)}
