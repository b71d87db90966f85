"""Data stage: the raw penguins table, its cleaned form, and the checks that guard both.

Each check is a plain function of the table, and each is a blocking check of its own in the
UI. The checks of one asset run in one step (`raw_penguins_checks`, `penguins_checks`):
every Dagster step costs about 0.15 s of bookkeeping on a small machine (a few events, each
written through its own SQLite connection), more than these checks take.
"""

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs import metadata
from penguins_platform.defs.resources import (
    LocalEndpoint,
    MlflowTracking,
    S3Storage,
    SageMakerEndpoint,
    capture_sources,
)
from penguins_platform.ml import schema, validation
from penguins_platform.project import PROJECT_ROOT

if TYPE_CHECKING:
    import pandas as pd

    from penguins_platform.monitoring.production import ProductionLabels

GROUP = "data"


class RawPenguinsConfig(dg.Config):
    location: str = Field(
        default=defaults.DATA_LOCATION,
        description=(
            "A CSV file or a folder of CSV files (relative paths start at the project root), "
            "or s3://bucket/prefix/ to read and concatenate every CSV under the prefix."
        ),
    )
    max_bytes: int = Field(
        default=defaults.MAX_DATA_BYTES,
        ge=1,
        description=(
            "The most bytes the location's CSV files may add up to. A larger location fails "
            "before anything is loaded: the table takes about 10x its file size in memory."
        ),
    )
    with_production_labels: bool = Field(
        default=False,
        description=(
            "Add the labeled rows that the endpoints captured (the newest production_rows of "
            "them) to the data. The data version then covers both parts, and the data checks "
            "and the challenger gate judge the result as any other."
        ),
    )
    production_rows: int = Field(
        default=defaults.PRODUCTION_TRAINING_ROWS,
        ge=1,
        description="The most captured rows read for with_production_labels.",
    )


class CleaningConfig(dg.Config):
    seed: int = Field(default=defaults.SEED, description="Seed of the row shuffle.")


@dg.asset(group_name=GROUP, kinds={"pandas", "csv"})
def raw_penguins(
    context: dg.AssetExecutionContext,
    config: RawPenguinsConfig,
    s3: S3Storage,
    local: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """The Palmer penguins table exactly as the source holds it, every column as text, and,
    when asked, the labeled production rows after it.

    The content hash of the source bytes (and of the production rows) is the data version,
    so the UI shows when the data behind a model changed, and the registered model records
    which data it saw.
    """
    import hashlib

    import pandas as pd

    from penguins_platform.ml.sources import read_raw_table

    table = read_raw_table(
        config.location, s3.client, root=PROJECT_ROOT, max_bytes=config.max_bytes
    )
    frame = table.frame
    content_hash = table.content_hash
    context.log.info(f"read {len(frame)} rows from {', '.join(table.files)}")
    added: dict[str, metadata.Entry] = {}
    if config.with_production_labels:
        labels = _production_labels(context, config, local, sagemaker, mlflow)
        context.log.info(f"adding {labels.describe()}")
        frame = pd.concat([frame, labels.table], ignore_index=True)
        content_hash = hashlib.sha256(f"{content_hash}+{labels.digest}".encode()).hexdigest()
        added = {
            "production_rows_added": len(labels.table),
            "production_versions": dg.MetadataValue.json(labels.versions),
            "production_rows": labels.describe(),
            **(
                {
                    "production_oldest_captured_at": labels.oldest.isoformat(),
                    "production_newest_captured_at": labels.newest.isoformat(),
                }
                if labels.oldest and labels.newest
                else {}
            ),
        }
    return dg.MaterializeResult(
        value=frame,
        data_version=dg.DataVersion(content_hash[:16]),
        metadata={
            "dagster/row_count": len(frame),
            "dagster/column_schema": metadata.column_schema(frame),
            "source": config.location,
            "files": dg.MetadataValue.json(table.files),
            "columns": dg.MetadataValue.json([str(c) for c in frame.columns]),
            "content_hash": content_hash,
            "preview": metadata.preview_table(frame),
            **added,
        },
    )


def _production_labels(
    context: dg.AssetExecutionContext,
    config: RawPenguinsConfig,
    local: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    mlflow: MlflowTracking,
) -> "ProductionLabels":
    """The labeled rows every enabled endpoint captured, as raw penguins. Nothing is deleted:
    a retention is monitoring's to apply."""
    from datetime import UTC, datetime

    from penguins_platform.capture.contract import Retention
    from penguins_platform.monitoring.production import production_labels, read_production

    sources = capture_sources(mlflow.registered_model_name, local, sagemaker, context.log)
    production = read_production(sources, config.production_rows, Retention(), datetime.now(UTC))
    return production_labels(production.rows)


def required_columns(raw_penguins: "pd.DataFrame") -> dg.AssetCheckResult:
    """Every feature and the label must be present, or nothing downstream can be computed."""
    missing = validation.missing_columns(raw_penguins)
    return dg.AssetCheckResult(
        passed=not missing,
        description=(
            f"missing column(s): {', '.join(map(repr, missing))}" if missing else "all present"
        ),
        metadata={"missing": dg.MetadataValue.json(missing)},
    )


def measurements_are_numeric(raw_penguins: "pd.DataFrame") -> dg.AssetCheckResult:
    """Text in a measurement column means a broken export; silently coercing it would hide rows."""
    found = validation.non_numeric_values(raw_penguins)
    problems = [
        f"{column!r} holds text at {validation.describe_rows([r for r, _ in pairs])}: "
        f"{', '.join(repr(v) for _, v in pairs[:3])}"
        for column, pairs in found.items()
    ]
    return dg.AssetCheckResult(
        passed=not found,
        description="; ".join(problems) or "every measurement is a number or missing",
        metadata={"columns_with_text": dg.MetadataValue.json(sorted(found))},
    )


@dg.asset(group_name=GROUP, kinds={"pandas"})
def penguins(
    context: dg.AssetExecutionContext, config: CleaningConfig, raw_penguins
) -> dg.MaterializeResult:
    """Typed, shuffled penguins, indexed by raw row number. No rows are dropped."""
    from penguins_platform.ml.cleaning import clean_penguins

    cleaned = clean_penguins(raw_penguins, seed=config.seed)
    balance = cleaned[schema.TARGET].value_counts(dropna=False)
    missing = cleaned.isna().sum()
    return dg.MaterializeResult(
        value=cleaned,
        metadata={
            "dagster/row_count": len(cleaned),
            "dagster/column_schema": metadata.column_schema(cleaned),
            "class_balance": metadata.key_value_table(
                [{"species": str(k), "rows": int(v)} for k, v in balance.items()],
                [("species", "string"), ("rows", "int")],
            ),
            "missing_values": metadata.key_value_table(
                [{"column": str(k), "missing": int(v)} for k, v in missing.items()],
                [("column", "string"), ("missing", "int")],
            ),
            **{f"rows_{species}": int(balance.get(species, 0)) for species in schema.SPECIES},
            "missing_total": int(missing.sum()),
        },
    )


def _labels_result(found: dict[str, dict[str, list[int]]]) -> dg.AssetCheckResult:
    problems = [
        f"{column!r} holds unknown label {label!r} at {validation.describe_rows(rows)}"
        for column, labels in found.items()
        for label, rows in labels.items()
    ]
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or "every label is known",
        metadata={
            "unknown": dg.MetadataValue.json(
                {column: sorted(labels) for column, labels in found.items() if labels}
            )
        },
    )


def species_are_known(penguins: "pd.DataFrame") -> dg.AssetCheckResult:
    """A label outside Adelie, Chinstrap and Gentoo, or none at all, cannot be trained on."""
    labels = validation.unknown_labels(penguins, schema.TARGET, schema.SPECIES)
    unlabelled = penguins.index[penguins[schema.TARGET].isna()]
    if len(unlabelled):
        labels["<missing>"] = [int(row) for row in unlabelled]
    return _labels_result({schema.TARGET: labels})


def categories_are_known(penguins: "pd.DataFrame") -> dg.AssetCheckResult:
    """Islands outside Biscoe, Dream and Torgersen, or an unknown sex, mean a shifted source.

    The encoder would silently ignore them in training, teaching the model nothing from those
    rows' category.
    """
    found = {
        "island": validation.unknown_labels(penguins, "island", schema.ISLANDS),
        "sex": validation.unknown_labels(penguins, "sex", schema.SEXES),
    }
    return _labels_result(found)


def measurements_are_plausible(penguins: "pd.DataFrame") -> dg.AssetCheckResult:
    """Values far outside any penguin's (a mass in kg, a length in cm) would skew the scaler."""
    found = validation.implausible_values(penguins)
    problems = [
        f"{column!r} is outside {schema.PLAUSIBLE_RANGES[column]} at "
        f"{validation.describe_rows([r for r, _ in pairs])}: "
        f"{', '.join(f'{v:g}' for _, v in pairs[:3])}"
        for column, pairs in found.items()
    ]
    return dg.AssetCheckResult(
        passed=not found,
        description="; ".join(problems) or "every measurement is within its plausible range",
        metadata={"ranges": dg.MetadataValue.json(schema.PLAUSIBLE_RANGES)},
    )


def missing_values_are_bounded(penguins: "pd.DataFrame") -> dg.AssetCheckResult:
    """A mostly-missing column would train the model on imputed constants, not on penguins."""
    shares = validation.missing_shares(penguins)
    over = {c: s for c, s in shares.items() if s > validation.MAX_MISSING_SHARE}
    return dg.AssetCheckResult(
        passed=not over,
        description=(
            "; ".join(
                f"{column!r} is {share:.0%} missing (bound {validation.MAX_MISSING_SHARE:.0%})"
                for column, share in over.items()
            )
            or f"every column is under {validation.MAX_MISSING_SHARE:.0%} missing"
        ),
        metadata={
            "missing_share": metadata.key_value_table(
                [{"column": c, "share": s} for c, s in shares.items()],
                [("column", "string"), ("share", "float")],
            ),
            "max_missing_share": max(shares.values()),
        },
    )


DataCheck = Callable[["pd.DataFrame"], dg.AssetCheckResult]
RAW_CHECKS: tuple[DataCheck, ...] = (required_columns, measurements_are_numeric)
CLEANED_CHECKS: tuple[DataCheck, ...] = (
    species_are_known,
    categories_are_known,
    measurements_are_plausible,
    missing_values_are_bounded,
)


def _specs(asset: str, checks: Sequence[DataCheck]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            check.__name__, asset=asset, blocking=True, description=inspect.getdoc(check)
        )
        for check in checks
    ]


def _evaluate(
    asset: str, table: "pd.DataFrame", checks: Sequence[DataCheck]
) -> Iterator[dg.AssetCheckResult]:
    for check in checks:
        yield check(table)._replace(check_name=check.__name__, asset_key=dg.AssetKey(asset))


@dg.multi_asset_check(specs=_specs("raw_penguins", RAW_CHECKS), ins={"raw_penguins": dg.AssetIn()})
def raw_penguins_checks(raw_penguins) -> Iterator[dg.AssetCheckResult]:
    """The raw table's checks, in one step."""
    yield from _evaluate("raw_penguins", raw_penguins, RAW_CHECKS)


@dg.multi_asset_check(specs=_specs("penguins", CLEANED_CHECKS), ins={"penguins": dg.AssetIn()})
def penguins_checks(penguins) -> Iterator[dg.AssetCheckResult]:
    """The cleaned table's checks, in one step."""
    yield from _evaluate("penguins", penguins, CLEANED_CHECKS)
