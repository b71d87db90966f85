"""Broken data and an unreachable MLflow: a clear error, and nothing registered."""

from pathlib import Path

import dagster as dg
import pytest

from penguins_platform.defs.event_log import failure_reasons
from penguins_platform.defs.resources import MlflowTracking, S3Storage
from penguins_platform.ml import schema
from penguins_platform.runner import report_failure
from penguins_platform_tests.conftest import (
    DATA_FILE,
    materialized_assets,
    model_versions,
    run_training,
    write_csv,
)
from penguins_platform_tests.readme import assert_shows
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
    materialized = materialized_assets(result)
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
    assert "is unreachable" in reasons and dead.uri in reasons
    started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert started == [], f"no step may start, training least of all: {started}"


def test_plain_file_store_is_refused_with_a_hint(instance):
    result = run_training(instance, MlflowTracking(tracking_uri="./mlruns"))
    assert "use sqlite:///path/to/mlflow.db instead" in "\n".join(
        failure_reasons(result.all_events)
    )


# A data location over `max_bytes` fails before it is loaded, naming its size and the knob.
KNOB = "raw_penguins config `max_bytes`"


def test_data_file_over_the_byte_bound_fails_before_it_is_read(
    tmp_path, instance, mlflow_tracking, sqlite_store, model_name, capsys
):
    """A sparse 4 GiB file under the default bound of 256 MiB: had it been read, the run would
    have spent gigabytes on it and failed on its content, not its size."""
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.truncate(4 * 1024**3)
    result = run_training(instance, mlflow_tracking, data=str(path))
    _assert_failed_with(
        result,
        f"{path} holds 4.0 GiB (4,294,967,296 bytes in 1 CSV file), over raw_penguins' "
        "max_bytes of 256.0 MiB (268,435,456 bytes). Nothing was loaded.",
    )
    assert KNOB in "\n".join(failure_reasons(result.all_events))
    capsys.readouterr()  # Dagster's own console log of the run
    report_failure("Training", result)  # what `make train` prints
    assert_shows(
        "data-over-max-bytes", capsys.readouterr().err, replace={"/tmp/huge.csv": str(path)}
    )
    materialized = materialized_assets(result)
    assert materialized == set()
    assert model_versions(sqlite_store.tracking_uri, model_name) == []


def test_folder_is_bounded_by_the_sum_of_its_files(tmp_path, instance, mlflow_tracking):
    header, *rows = _lines()
    folder = tmp_path / "parts"
    folder.mkdir()
    sizes = []
    for part, chunk in enumerate((rows[:172], rows[172:])):
        path = write_csv(folder, "\n".join([header, *chunk]) + "\n", f"part-{part}.csv")
        sizes.append(path.stat().st_size)
    bound = max(sizes) + 1  # each file alone fits; together they do not
    result = run_training(
        instance,
        mlflow_tracking,
        data=str(folder),
        max_data_bytes=bound,
        selection=["raw_penguins"],
    )
    _assert_failed_with(result, f"({sum(sizes):,} bytes in 2 CSV files, the largest")
    # At the bound exactly, the same folder loads.
    result = run_training(
        instance, mlflow_tracking, data=str(folder), max_data_bytes=sum(sizes),
        selection=["raw_penguins"],
    )  # fmt: skip
    assert result.success, failure_reasons(result.all_events)
    assert len(result.output_for_node("raw_penguins")) == 344


OBJECT_READS: list[str] = []


class ReadCountingS3(S3Storage):
    """The real S3 client, with every GetObject it sends noted in OBJECT_READS."""

    def client(self):
        made = super().client()
        made.meta.events.register(
            "before-call.s3.GetObject", lambda params, **_: OBJECT_READS.append(params["Key"])
        )
        return made


def test_s3_prefix_over_the_byte_bound_fails_before_any_object_is_read(
    moto_server, instance, mlflow_tracking, sqlite_store, model_name
):
    s3 = S3Storage(endpoint_url=moto_server, region_name="us-east-1")
    client = s3.client()
    client.create_bucket(Bucket="penguins-big")
    body = DATA_FILE.read_bytes()
    for part in range(3):
        client.put_object(Bucket="penguins-big", Key=f"raw/part-{part}.csv", Body=body)
    OBJECT_READS.clear()
    counting = ReadCountingS3(endpoint_url=moto_server, region_name="us-east-1")
    result = run_training(
        instance, mlflow_tracking, s3=counting, data="s3://penguins-big/raw/",
        max_data_bytes=2 * len(body),
    )  # fmt: skip
    _assert_failed_with(
        result,
        f"s3://penguins-big/raw/ holds {3 * len(body) / 1024:.1f} KiB ({3 * len(body):,} bytes "
        "in 3 CSV files, the largest s3://penguins-big/raw/part-0.csv",
    )
    assert OBJECT_READS == [], "no object may be read once the listing is over the bound"
    assert model_versions(sqlite_store.tracking_uri, model_name) == []


def test_knobs_below_one_are_refused_naming_the_knob(instance, mlflow_tracking):
    """As the launchpad sends them: plain config, checked when the run starts."""
    from penguins_platform.definitions import defs

    job = defs.resolve_job_def("training_job")
    with pytest.raises(dg.DagsterConfigMappingFunctionError) as raised:
        job.execute_in_process(
            run_config={"ops": {"cross_validation_scores": {"config": {"steps_per_execution": 0}}}},
            instance=instance,
        )
    assert "steps_per_execution\n  Input should be greater than or equal to 1" in str(
        raised.value.__cause__
    )
    result = job.execute_in_process(
        run_config={"ops": {"raw_penguins": {"config": {"max_bytes": 0}}}},
        instance=instance,
        raise_on_error=False,
    )
    _assert_failed_with(result, "max_bytes\n  Input should be greater than or equal to 1")
