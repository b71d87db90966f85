"""The monitoring report: a batch of production rows set against the training data.

Evidently computes everything: a summary of the six features, the drift of each against the
training data, and the model's quality on the rows that have a label. The numbers come back as
a `MonitoringSummary`, so callers never read Evidently's result format, and the pictures go
to one self-contained HTML page that opens without a network.

Evidently is imported inside `build_report`: it takes seconds and hundreds of megabytes, and
importing the Dagster definitions must stay cheap.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from penguins_platform.ml import schema

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from evidently.legacy.model.widget import BaseWidgetInfo

# Two-sample tests whose p-value means the same at any batch size: a feature drifts when its
# test rejects "drawn like the training data" at DRIFT_P_VALUE. Set explicitly, because
# Evidently's own choice switches to distances (Wasserstein, Jensen-Shannon) once the reference
# passes 1,000 rows, and those flag most clean batches of a few dozen rows. At 0.05, each of the
# six features of a clean batch would drift by chance one time in twenty, so one clean batch in
# four would fail feature_drift; at 0.01, about one in seventeen does.
NUMERIC_DRIFT_METHOD = "ks"
CATEGORICAL_DRIFT_METHOD = "chisquare"
DRIFT_P_VALUE = 0.01

# The production table's columns for the true and the predicted species.
TARGET_COLUMN = "target"
PREDICTION_COLUMN = "prediction"


class ReportInputError(ValueError):
    """The rows cannot be compared. The message names the column or value to fix."""


@dataclass(frozen=True)
class MonitoringSummary:
    """What the report found, in plain numbers.

    `recall` holds the species that occur among the labels, and `precision` those of them the
    model predicted at least once: a ratio with nothing under it is undefined, and a zero there
    would read as a model failing on that species. (Evidently scores only species found among
    the labels; a species predicted but never labeled shows in `confusion` alone.)
    """

    rows: int
    labeled: int
    drift_share: float  # share of the six features that drifted
    drifted_features: list[str]
    p_values: dict[str, float]  # per feature, the drift test's p-value
    drift_methods: dict[str, str]  # per feature, which test
    accuracy: float | None  # None when no row is labeled yet
    precision: dict[str, float]
    recall: dict[str, float]
    confusion: list[list[int]]  # rows = true species, columns = predicted, schema.SPECIES order
    html_path: Path | None
    dataset_drift: bool  # drift_share reached the share build_report was given
    # Features the drift test could not judge, and why: no value in the batch (counted as
    # drifted) or none in the reference (not counted). Empty when all six were tested.
    not_testable: dict[str, str]
    reference_rows: int | None  # None: no reference, so drift was not judged at all


def build_report(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    *,
    drift_share: float,
    html_path: Path | None,
) -> MonitoringSummary:
    """Compare `current` production rows with the `reference` training data.

    `reference` is the cleaned training table (the six features; other columns are ignored).
    `current` is the production table: drift looks only at its six features, and model quality
    only at its rows whose `target` is set. `drift_share` is the share of drifted features
    from which the whole batch counts as drifted. With `html_path`, the report is saved there.

    A feature with no value at all in the batch cannot be tested: it counts as drifted (a
    client that stopped sending it is a change worth an alarm) and its p-value is NaN. A
    feature with no value in the reference cannot be tested either; it is not counted, since
    production did nothing wrong. Both are named in `not_testable`. With no reference at all
    (`None`), drift is not judged: the report holds the batch's summary and model quality.
    """
    if reference is not None:
        _check_columns(reference, schema.FEATURES, "the reference (training) table")
    _check_columns(current, (*schema.FEATURES, PREDICTION_COLUMN, TARGET_COLUMN), "the batch")
    if current.empty:
        raise ReportInputError("the production batch has no rows: capture some traffic first")
    if not 0.0 < drift_share <= 1.0:
        raise ReportInputError(f"drift_share must be in (0, 1], got {drift_share}")
    labeled = _LabeledRows.of(current)
    features = _features(current)
    absent = [column for column in schema.FEATURES if features[column].isna().all()]
    baseline = _features(reference) if reference is not None else None
    never_trained = (
        [c for c in schema.FEATURES if c not in absent and baseline[c].isna().all()]
        if baseline is not None
        else []
    )
    not_testable = {c: "no value in the production rows" for c in absent} | {
        c: "no value in the training data" for c in never_trained
    }

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    definition = DataDefinition(
        numerical_columns=list(schema.NUMERIC_FEATURES),
        categorical_columns=list(schema.CATEGORICAL_FEATURES),
    )
    tested = [c for c in schema.FEATURES if c not in not_testable] if baseline is not None else []
    drift_preset = DataDriftPreset(
        columns=tested,
        drift_share=drift_share,
        num_method=NUMERIC_DRIFT_METHOD,
        cat_method=CATEGORICAL_DRIFT_METHOD,
        num_threshold=DRIFT_P_VALUE,
        cat_threshold=DRIFT_P_VALUE,
    )
    with warnings.catch_warnings():
        # A category training never saw expects no rows: chi-square divides by zero on the
        # way to p = 0, which is the drift it should report.
        warnings.filterwarnings("ignore", "divide by zero", RuntimeWarning)
        # An all-empty column's summary divides by a count of zero.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        data = Report([DataSummaryPreset(), *([drift_preset] if tested else [])]).run(
            Dataset.from_pandas(features, data_definition=definition),
            # An all-empty reference column breaks Evidently's summary too: it sees the
            # reference without it.
            Dataset.from_pandas(baseline, data_definition=definition)
            if baseline is not None and tested
            else None,
        )
    p_values = {column: math.nan for column in schema.FEATURES} | _p_values(data.dict()["metrics"])
    drifted = (
        [c for c in schema.FEATURES if c in absent or p_values[c] < DRIFT_P_VALUE]
        if baseline is not None
        else []
    )
    quality = _quality(labeled) if labeled.rows else None

    if html_path is not None:
        _save_html(html_path, data, quality, labeled.rows, not_testable, baseline is not None)
    share = len(drifted) / len(schema.FEATURES)
    return MonitoringSummary(
        rows=len(current),
        labeled=labeled.rows,
        drift_share=share,
        drifted_features=drifted,
        p_values={column: p_values[column] for column in schema.FEATURES},
        drift_methods={column: _drift_method(column) for column in schema.FEATURES},
        accuracy=quality.accuracy if quality else None,
        precision=quality.precision if quality else {},
        recall=quality.recall if quality else {},
        confusion=quality.confusion if quality else _zero_confusion(),
        html_path=html_path,
        dataset_drift=share >= drift_share,
        not_testable=not_testable,
        reference_rows=len(baseline) if baseline is not None else None,
    )


def _check_columns(frame: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ReportInputError(
            f"{what} lacks column(s) {', '.join(map(repr, missing))}; "
            f"found {', '.join(map(repr, frame.columns))}"
        )


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    """The six features alone, typed alike in both tables, so ids and timestamps never drift."""
    frame = frame.reset_index(drop=True)
    features = pd.DataFrame(index=frame.index)
    for column in schema.FEATURES:
        if column in schema.NUMERIC_FEATURES:
            features[column] = pd.to_numeric(frame[column]).astype("float64")
        else:
            features[column] = frame[column].astype("object").where(frame[column].notna(), None)
    return features


def _drift_method(column: str) -> str:
    return NUMERIC_DRIFT_METHOD if column in schema.NUMERIC_FEATURES else CATEGORICAL_DRIFT_METHOD


@dataclass(frozen=True)
class _LabeledRows:
    """The labeled rows, species as integer codes, and the species each code stands for.

    Evidently scores integer codes about four times faster than species names (nine times at
    50,000 rows). The codes count only the species present. With exactly two, Evidently scores
    the pair as a binary task whose positive label is 1, and it then fails on any names given
    to the codes, so a two-species report shows codes 0 and 1 and a legend.
    """

    codes: pd.DataFrame  # schema.TARGET and PREDICTION_COLUMN, as int64
    species: dict[int, str]

    @property
    def rows(self) -> int:
        return len(self.codes)

    @property
    def named(self) -> bool:
        """Whether Evidently may be given the species names (see the class docstring)."""
        return len(self.species) != 2

    def name(self, label: object) -> str:
        """The species of a label in Evidently's results: a name, or a code when not named."""
        if isinstance(label, str) and label in schema.SPECIES:
            return label
        return self.species[int(str(label))]

    @classmethod
    def of(cls, current: pd.DataFrame) -> _LabeledRows:
        pair = current[[TARGET_COLUMN, PREDICTION_COLUMN]].reset_index(drop=True)
        labeled = pair[pair[TARGET_COLUMN].notna()]
        for column in (TARGET_COLUMN, PREDICTION_COLUMN):
            unknown = sorted({str(v) for v in labeled[column] if v not in schema.SPECIES})
            if unknown:
                raise ReportInputError(
                    f"column {column!r} of the batch holds {', '.join(map(repr, unknown))}, "
                    f"not a species in {', '.join(schema.SPECIES)}"
                )
        seen = set(labeled[TARGET_COLUMN]) | set(labeled[PREDICTION_COLUMN])
        present = [species for species in schema.SPECIES if species in seen]
        code = {species: i for i, species in enumerate(present)}
        codes = pd.DataFrame(
            {
                schema.TARGET: labeled[TARGET_COLUMN].map(code),
                PREDICTION_COLUMN: labeled[PREDICTION_COLUMN].map(code),
            },
            dtype="int64",
        )
        return cls(codes.reset_index(drop=True), dict(enumerate(present)))


def _metric_type(metric: dict[str, Any]) -> str:
    return str(metric.get("config", {}).get("type", "")).rsplit(":", 1)[-1]


def _p_values(metrics: list[dict[str, Any]]) -> dict[str, float]:
    """Each tested feature's p-value, read from the evaluated report's results."""
    p_values: dict[str, float] = {}
    for metric in metrics:
        if _metric_type(metric) == "ValueDrift":
            column, method = metric["config"]["column"], metric["config"]["method"]
            if method != _drift_method(column):
                raise RuntimeError(
                    f"Evidently tested {column!r} with {method!r}, not {_drift_method(column)!r}"
                )
            p_values[column] = float(metric["value"])
    return p_values


@dataclass(frozen=True)
class _Quality:
    accuracy: float
    precision: dict[str, float]
    recall: dict[str, float]
    confusion: list[list[int]]
    widgets: list[BaseWidgetInfo]  # Evidently's rendering, for the HTML page


def _quality(labeled: _LabeledRows) -> _Quality:
    """Accuracy, per-species precision and recall, and the confusion matrix on labeled rows."""
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.legacy.metrics import ClassificationConfusionMatrix
    from evidently.legacy.renderers.html_widgets import text_widget
    from evidently.presets import ClassificationQuality, ClassificationQualityByLabel

    definition = DataDefinition(
        classification=[
            MulticlassClassification(
                target=schema.TARGET,
                prediction_labels=PREDICTION_COLUMN,
                labels=labeled.species if labeled.named else None,
            )
        ],
        categorical_columns=[schema.TARGET, PREDICTION_COLUMN],
    )
    with warnings.catch_warnings():
        # scikit-learn warns for a species with no predictions (left out of `precision` below)
        # and for a batch of one species (the matrix is laid out by name below).
        warnings.filterwarnings("ignore", ".*ill-defined")
        warnings.filterwarnings("ignore", "A single label was found")
        snapshot = Report(
            [ClassificationQuality(conf_matrix=True), ClassificationQualityByLabel()]
        ).run(Dataset.from_pandas(labeled.codes, data_definition=definition), None)
        # The matrix has no metric of its own in Evidently 0.7: the report computed it for its
        # plot, and this call returns that cached result.
        matrix = snapshot.context.get_legacy_metric(
            ClassificationConfusionMatrix(), None, "default"
        )[0].current_matrix

    position = {species: i for i, species in enumerate(schema.SPECIES)}
    confusion = _zero_confusion()
    for i, true in enumerate(matrix.labels):
        for j, predicted in enumerate(matrix.labels):
            row, column = position[labeled.name(true)], position[labeled.name(predicted)]
            confusion[row][column] = int(matrix.values[i][j])
    was_predicted = {s for s, j in position.items() if any(row[j] for row in confusion)}

    values = {_metric_type(m): m["value"] for m in snapshot.dict()["metrics"]}
    precision = {labeled.name(k): v for k, v in values["PrecisionByLabel"].items()}
    recall = {labeled.name(k): v for k, v in values["RecallByLabel"].items()}
    scored_and_predicted = precision.keys() & was_predicted
    widgets = snapshot.to_snapshot_model().widgets
    if not labeled.named:
        legend = ", ".join(f"{code} = {species}" for code, species in labeled.species.items())
        widgets = [text_widget(text=f"Species codes in this section: {legend}."), *widgets]
    return _Quality(
        accuracy=float(values["Accuracy"]),
        precision={s: float(precision[s]) for s in schema.SPECIES if s in scored_and_predicted},
        recall={s: float(recall[s]) for s in schema.SPECIES if s in recall},
        confusion=confusion,
        widgets=widgets,
    )


def _zero_confusion() -> list[list[int]]:
    return [[0] * len(schema.SPECIES) for _ in schema.SPECIES]


def _save_html(
    path: Path,
    data: Snapshot,
    quality: _Quality | None,
    labeled: int,
    not_testable: dict[str, str],
    has_reference: bool,
) -> None:
    """One page for both reports: Evidently saves one report per file, so join their widgets."""
    from evidently.core.metric_types import render_widgets
    from evidently.legacy.renderers.html_widgets import group_widget, text_widget

    data_widgets = data.to_snapshot_model().widgets
    if has_reference:
        notes = [f"{column}: not testable, {why}." for column, why in not_testable.items()]
    else:
        notes = ["No training data was recorded for this version: drift is not judged."]
    if notes:
        data_widgets = [text_widget(text=" ".join(notes)), *data_widgets]
    if quality is None:
        note = "No row has a label yet: model quality appears once labels are written back."
        quality_widgets = [text_widget(text=note)]
    else:
        quality_widgets = quality.widgets
    html = render_widgets(
        [
            group_widget(
                title="Production features against the training data", widgets=data_widgets
            ),
            group_widget(title=f"Model quality on {labeled} labeled rows", widgets=quality_widgets),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
