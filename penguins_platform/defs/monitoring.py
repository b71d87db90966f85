"""Monitoring stage: what production saw, its ground truth, and how both compare with training.

`production_data` reads the newest rows each enabled deployment target captured (the local
endpoint's capture store, SageMaker's data capture in S3) through the targets themselves, so
the lineage runs on from the endpoints: data → model → endpoint → production health.
`ground_truth_labels` labels the rows that have no label yet and writes the labels back to
where the rows live, so labeling twice changes nothing. `monitoring_report` is an Evidently
report against the training data, whose numbers become the checks that close the loop: a
failed `production_accuracy`, or drift that persists, requests retraining (`defs/sensors.py`).

No production data, or no labels yet, is a normal state of a new deployment: the assets then
materialize and say so, and the checks that have nothing to judge are left unevaluated. The
rules themselves live in `monitoring/`; this module wires them to Dagster.
"""

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs import metadata
from penguins_platform.defs.deployment import DEPLOYMENT_ASSETS
from penguins_platform.defs.resources import (
    LocalEndpoint,
    MlflowTracking,
    Monitoring,
    SageMakerEndpoint,
    capture_sources,
    target_status,
)
from penguins_platform.defs.schedules import AUTOMATION
from penguins_platform.deploy.selection import never_skipped
from penguins_platform.settings import AutomationSettings, variable

if TYPE_CHECKING:
    import pandas as pd

    from penguins_platform.monitoring.checks import Verdict
    from penguins_platform.monitoring.report import MonitoringSummary

# Annotations stay evaluated here (no `from __future__ import annotations`): Dagster reads the
# config and resource classes from the signatures. Data inputs stay unannotated, since pandas
# is imported only inside the bodies.

GROUP = "monitoring"
REPORT_KEY = dg.AssetKey("monitoring_report")


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


def _bound(config: type[dg.Config], field: str) -> str:
    """A check's bound as its spec describes it: the launchpad field that sets it, and its
    default. The spec cannot know what a run will set; each result names the bound it used."""
    return f"`{field}` ({config.model_fields[field].default:g} unless the launchpad says)"


def check_result(
    asset: str,
    name: str,
    verdict: "Verdict",
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    extra: Mapping[str, str] | None = None,
) -> dg.AssetCheckResult:
    """A monitoring verdict as Dagster's check result; mappings and lists become JSON."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=verdict.passed,
        severity=severity,
        description=verdict.description,
        metadata={
            **(extra or {}),
            **{
                key: dg.MetadataValue.json(value) if isinstance(value, Mapping | list) else value
                for key, value in verdict.metadata.items()
            },
        },
    )


def _time_range(rows: "pd.DataFrame") -> dict[str, metadata.Entry]:
    if rows.empty:
        return {}
    return {
        "oldest_captured_at": rows["captured_at"].iloc[0].isoformat(),
        "newest_captured_at": rows["captured_at"].iloc[-1].isoformat(),
    }


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines[:10])


@dg.asset(
    group_name=GROUP,
    # Only the targets that are never skipped here (PENGUINS_TARGETS's, or the local endpoint by
    # default): Dagster skips whatever depends on a skipped asset in the same run, and
    # Materialize all would then skip monitoring. Every enabled target's capture is read.
    deps=[DEPLOYMENT_ASSETS[name] for name in never_skipped()],
    kinds={"pandas", "sqlite"},
    check_specs=[
        dg.AssetCheckSpec(
            "capture_health",
            asset="production_data",
            description="Requests arrived in the last "
            f"{_bound(ProductionDataConfig, 'recent_hours')} hours, and the endpoints capture "
            "every one: no write failures, spilled or lost rows, and no corrupt rows in the "
            "store.",
        )
    ],
)
def production_data(
    context: dg.AssetExecutionContext,
    config: ProductionDataConfig,
    local: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    monitoring: Monitoring,
    mlflow: MlflowTracking,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The newest captured predictions of every enabled endpoint: features, prediction,
    confidence, the version that answered, and the label once one is known.

    When a retention is configured, older rows are deleted first and counted here, so nothing
    disappears unseen.
    """
    from penguins_platform.monitoring import checks
    from penguins_platform.monitoring.production import (
        NO_PRODUCTION_DATA,
        describe_retention,
        read_production,
    )

    model_name = mlflow.registered_model_name
    sources = capture_sources(model_name, local, sagemaker, context.log)
    retention = monitoring.retention()
    now = datetime.now(UTC)
    production = read_production(sources, config.rows, retention, now)
    rows = production.rows
    if production.skipped:
        examples = "; ".join(production.skipped_examples[:3])
        context.log.warning(
            f"skipped {production.skipped} corrupt captured rows; for example: {examples}"
        )
    if retention.enabled:
        context.log.info(
            f"retention ({describe_retention(retention)}) removed "
            + ", ".join(f"{n} rows from the {name} store" for name, n in production.removed.items())
        )
    if rows.empty:
        context.log.warning(NO_PRODUCTION_DATA)
    counters = (
        local.target(model_name, context.log).capture_counters()
        if target_status(local).enabled
        else None
    )
    health = checks.capture_health(production, counters, config.recent_hours, now)
    # An Output, not a MaterializeResult: Dagster compares a MaterializeResult's value with
    # a sentinel, which a DataFrame answers element by element.
    yield dg.Output(
        rows,
        metadata={
            "status": production.status,
            "row_count": len(rows),
            "labeled_count": int(rows["target"].notna().sum()),
            **_time_range(rows),
            "answered_by_versions": dg.MetadataValue.json(production.versions_seen()),
            "sources": dg.MetadataValue.json(
                {name: source.label for name, source in sources.items()}
            ),
            "corrupt_rows_skipped": production.skipped,
            **(
                {"corrupt_row_examples": dg.MetadataValue.md(_bullets(production.skipped_examples))}
                if production.skipped
                else {}
            ),
            "retention": describe_retention(retention),
            "retention_removed_rows": sum(production.removed.values()),
            **({"newest_rows": metadata.preview_table(rows.iloc[::-1])} if len(rows) else {}),
        },
    )
    yield check_result("production_data", "capture_health", health)


@dg.asset(group_name=GROUP, kinds={"pandas"})
def ground_truth_labels(
    context: dg.AssetExecutionContext,
    production_data,
    local: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    monitoring: Monitoring,
    mlflow: MlflowTracking,
) -> dg.Output:
    """The production rows with their ground truth: the configured labeler labels the rows
    that have none yet, and the labels are written back to the store each row came from, so
    a label is given once and kept."""
    from penguins_platform.monitoring.production import label_rows

    unlabeled = int(production_data["target"].isna().sum())
    sources = (
        capture_sources(mlflow.registered_model_name, local, sagemaker, context.log)
        if unlabeled
        else {}
    )
    labeled = label_rows(production_data, monitoring.make_labeler(), sources)
    labeler = monitoring.describe_labeler()
    context.log.info(f"{labeled.status}; {labeled.written} labels written now ({labeler})")
    agreement = labeled.agreement
    return dg.Output(
        labeled.rows,
        metadata={
            "status": labeled.status,
            "labeler": labeler,
            "labeled_now": labeled.written,
            "already_labeled": labeled.already,
            "labeled_count": len(labeled.labeled),
            "unlabeled_count": len(labeled.rows) - len(labeled.labeled),
            **({"label_agreement": round(agreement, 4)} if agreement is not None else {}),
        },
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "monitoring_report",
            group_name=GROUP,
            kinds={"evidently", "html"},
            deps=["ground_truth_labels"],
            description="An Evidently report on the rows that the serving version answered, "
            "against the data that trained that version (recorded with it in MLflow): a data "
            "summary, drift of the six features, and classification quality on the labeled "
            "rows. Rows answered by other versions are counted, not judged. The HTML is saved "
            "as a file and as an MLflow artifact of the judged version's run.",
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "feature_drift",
            asset="monitoring_report",
            description="The share of drifted features stays within "
            f"{_bound(MonitoringReportConfig, 'drift_share')}: production still looks like the "
            "data that trained the serving version. A feature with no value on either side is "
            "named as not testable. Warns; drift in "
            f"{AUTOMATION.drift_persistence} evaluations in a row "
            f"({variable(AutomationSettings, 'drift_persistence')}) requests retraining.",
        ),
        dg.AssetCheckSpec(
            "production_accuracy",
            asset="monitoring_report",
            description="Accuracy on the serving version's labeled production rows stays at or "
            f"above {_bound(MonitoringReportConfig, 'accuracy_threshold')}. A failure requests "
            "retraining.",
        ),
    ],
    can_subset=True,
)
def monitoring_report(
    context: dg.AssetExecutionContext,
    config: MonitoringReportConfig,
    ground_truth_labels,
    local: LocalEndpoint,
    monitoring: Monitoring,
    mlflow: MlflowTracking,
) -> Iterator[dg.MaterializeResult]:
    from penguins_platform.monitoring import checks
    from penguins_platform.monitoring.production import (
        NO_LABELED_DATA,
        NO_PRODUCTION_DATA,
        accuracy_by_version,
        answered_by_versions,
        report_path,
    )
    from penguins_platform.monitoring.report import build_report
    from penguins_platform.tracking.promotion import training_data

    rows = ground_truth_labels
    if rows.empty:
        context.log.warning(NO_PRODUCTION_DATA)
        yield dg.MaterializeResult(
            asset_key="monitoring_report",
            metadata={"status": NO_PRODUCTION_DATA, "row_count": 0},
        )
        return
    answered = answered_by_versions(rows)
    local_status = target_status(local)
    serving = (
        local.target(mlflow.registered_model_name, context.log).served_version()
        if local_status.enabled
        else None
    )
    judged = serving if serving in answered else str(rows["model_version"].iloc[-1])
    if serving is None:
        why = "does not answer" if local_status.enabled else f"is off ({local_status.reason})"
        context.log.info(
            f"the local endpoint {why}; judging version {judged}, which answered the newest "
            "captured row"
        )
    elif serving != judged:
        context.log.warning(
            f"version {serving} serves now but answered none of these rows; judging version "
            f"{judged}, which answered the newest"
        )
    batch = rows[rows["model_version"].astype(str) == judged]
    reference = training_data(mlflow.client(), mlflow.registered_model_name, judged)
    if reference is None:
        context.log.warning(
            f"version {judged} was registered without its training data, so drift is not "
            "judged; a version trained now records it"
        )
    html = report_path(monitoring.report_folder(), context.run.run_id, datetime.now(UTC))
    summary = build_report(reference, batch, drift_share=config.drift_share, html_path=html)
    artifact = _log_report(context, mlflow, judged, html)
    verdicts = {}
    if reference is not None:
        verdicts["feature_drift"] = (
            checks.feature_drift(summary, config.drift_share),
            dg.AssetCheckSeverity.WARN,
        )
    accuracy = checks.production_accuracy(summary, config.accuracy_threshold)
    if accuracy is None:
        context.log.warning(f"{NO_LABELED_DATA}; production_accuracy is not evaluated")
    else:
        verdicts["production_accuracy"] = (accuracy, dg.AssetCheckSeverity.ERROR)
    coverage = {"judged_version": judged, "serving_now": serving or "unknown"}
    selected = context.selected_asset_check_keys
    yield dg.MaterializeResult(
        asset_key="monitoring_report",
        metadata={
            "status": NO_LABELED_DATA if summary.accuracy is None else f"{summary.rows} rows",
            **coverage,
            "answered_by_versions": dg.MetadataValue.json(answered),
            "accuracy_by_version": dg.MetadataValue.json(accuracy_by_version(rows)),
            "row_count": summary.rows,
            "labeled_count": summary.labeled,
            "reference": (
                f"training data of version {judged} ({summary.reference_rows} rows, "
                f"{_reference_version(mlflow, judged)})"
                if reference is not None
                else f"none recorded for version {judged}"
            ),
            "drift_share": round(summary.drift_share, 4),
            "drifted_features": dg.MetadataValue.json(summary.drifted_features),
            "not_testable": dg.MetadataValue.json(summary.not_testable),
            # One float per feature, so the UI plots each p-value over time.
            **{
                f"drift_p_value/{name}": p
                for name, p in checks.p_values(summary).items()
                if p is not None
            },
            **_quality_metadata(summary),
            "report_file": dg.MetadataValue.path(str(html)),
            **artifact,
        },
        check_results=[
            check_result("monitoring_report", name, verdict, severity, coverage)
            for name, (verdict, severity) in verdicts.items()
            if dg.AssetCheckKey(REPORT_KEY, name) in selected
        ],
    )


def _reference_version(mlflow: MlflowTracking, version: str) -> str:
    """The data version that trained `version`, as its registry tags say."""
    tags = mlflow.client().get_model_version(mlflow.registered_model_name, version).tags or {}
    return f"data version {tags.get('data_version', 'unknown')}"


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
        if run_id is None:
            raise ValueError(f"version {version} was registered without an MLflow run")
        mlflow.client().log_artifact(run_id, str(html), artifact_path)
    except Exception as error:
        context.log.warning(f"the report was not logged to MLflow: {error}")
        return {"report_in_mlflow": f"not logged: {str(error)[:200]}"}
    url = f"{mlflow.run_url(run_id)}/artifacts/{artifact_path}/{html.name}"
    return {"report_in_mlflow": dg.MetadataValue.url(url)}
