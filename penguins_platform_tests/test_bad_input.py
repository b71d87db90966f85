"""Broken data and an unreachable MLflow: a clear error, and nothing registered."""

from pathlib import Path

import dagster as dg
import pytest

from penguins_platform.defs.event_log import failure_reasons
from penguins_platform.defs.resources import MlflowTracking, S3Storage
from penguins_platform.ml import schema
from penguins_platform_tests.conftest import (
    DATA_FILE,
    model_versions,
    run_training,
    write_csv,
)
from penguins_platform_tests.servers import free_port

HEADER = ",".join(schema.REQUIRED_COLUMNS)


def _lines() -> list[str]:
    return DATA_FILE.read_text().splitlines()


def _with_column_dropped(column: str) -> str:
    import pandas as pd

    return pd.read_csv(DATA_FILE).drop(columns=[column]).to_csv(index=False)


def _with_cell(row: int, column: str, value: str) -> str:
    import pandas as pd

    frame = pd.read_csv(DATA_FILE, dtype=str)
    frame.loc[row, column] = value
    return frame.to_csv(index=False)


def _with_column_emptied(column: str) -> str:
    import pandas as pd

    frame = pd.read_csv(DATA_FILE, dtype=str)
    frame[column] = None
    return frame.to_csv(index=False)


BROKEN_FILES = {
    "empty file": ("", "is empty"),
    "header only": (HEADER + "\n", "has a header but no data rows"),
    "missing column": (
        _with_column_dropped("flipper_length_mm"),
        "check raw_penguins:required_columns failed: missing column(s): 'flipper_length_mm'",
    ),
    "text in a numeric column": (
        _with_cell(12, "body_mass_g", "heavy"),
        "'body_mass_g' holds text at row 12: 'heavy'",
    ),
    "unknown species": (
        _with_cell(40, "species", "Emperor"),
        "'species' holds unknown label 'Emperor' at row 40",
    ),
    "feature column all missing": (
        _with_column_emptied("culmen_depth_mm"),
        "'culmen_depth_mm' is 100% missing",
    ),
}


def _assert_failed_with(result: dg.ExecuteInProcessResult, expected: str) -> None:
    assert not result.success
    reasons = "\n".join(failure_reasons(result.all_events))
    assert expected in reasons, f"expected {expected!r} in:\n{reasons}"
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "registered_model_version" not in materialized
    assert "trained_model" not in materialized, "training must not start on bad data"


@pytest.mark.parametrize("content,expected", BROKEN_FILES.values(), ids=BROKEN_FILES.keys())
def test_broken_file_fails_clearly_and_registers_nothing(
    content, expected, tmp_path, instance, mlflow_tracking, sqlite_store, model_name
):
    path = write_csv(tmp_path, content)
    result = run_training(instance, mlflow_tracking, data=str(path))
    _assert_failed_with(result, expected)
    assert model_versions(sqlite_store.tracking_uri, model_name) == []


def test_missing_data_file_names_the_path(
    tmp_path, instance, mlflow_tracking, sqlite_store, model_name
):
    path = tmp_path / "nowhere" / "penguins.csv"
    result = run_training(instance, mlflow_tracking, data=str(path))
    _assert_failed_with(result, f"data file {path} does not exist")
    assert model_versions(sqlite_store.tracking_uri, model_name) == []


def test_s3_prefix_without_csv_names_the_prefix(
    moto_server, instance, mlflow_tracking, sqlite_store, model_name
):
    s3 = S3Storage(endpoint_url=moto_server, region_name="us-east-1")
    client = s3.client()
    client.create_bucket(Bucket="penguins-data")
    client.put_object(Bucket="penguins-data", Key="raw/README.txt", Body=b"not data")
    result = run_training(instance, mlflow_tracking, s3=s3, data="s3://penguins-data/raw/")
    _assert_failed_with(
        result, "s3://penguins-data/raw/ holds no CSV files (1 other object(s) under the prefix)"
    )
    assert model_versions(sqlite_store.tracking_uri, model_name) == []


def test_s3_prefix_reads_and_concatenates_every_csv(moto_server, instance, mlflow_tracking):
    s3 = S3Storage(endpoint_url=moto_server, region_name="us-east-1")
    client = s3.client()
    client.create_bucket(Bucket="penguins-data")
    header, *rows = _lines()
    for part, chunk in enumerate((rows[:200], rows[200:])):
        body = "\n".join([header, *chunk]).encode()
        client.put_object(Bucket="penguins-data", Key=f"raw/part-{part}.csv", Body=body)
    result = run_training(
        instance, mlflow_tracking, s3=s3, data="s3://penguins-data/raw/", selection=["raw_penguins"]
    )
    assert result.success, failure_reasons(result.all_events)
    raw = result.output_for_node("raw_penguins")
    assert len(raw) == len(rows) == 344
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_penguins"))
    files = event.asset_materialization.metadata["files"].value
    assert files == ["s3://penguins-data/raw/part-0.csv", "s3://penguins-data/raw/part-1.csv"]


def test_unreachable_mlflow_fails_before_any_step(instance, sqlite_store, tmp_path: Path):
    dead = MlflowTracking(tracking_uri=f"http://127.0.0.1:{free_port()}", registered_model_name="x")
    result = run_training(instance, dead)
    assert not result.success
    reasons = "\n".join(failure_reasons(result.all_events))
    assert "is unreachable" in reasons and dead.tracking_uri in reasons
    started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert started == [], f"no step may start, training least of all: {started}"


def test_plain_file_store_is_refused_with_a_hint(instance):
    result = run_training(instance, MlflowTracking(tracking_uri="./mlruns"))
    assert "use sqlite:///path/to/mlflow.db instead" in "\n".join(
        failure_reasons(result.all_events)
    )
