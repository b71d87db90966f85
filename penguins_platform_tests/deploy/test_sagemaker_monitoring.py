"""Monitoring reads what SageMaker captured: `production_data` and `ground_truth_labels` against
moto in server mode, through the SageMaker resource's target and its capture source, beside
the local endpoint's capture store. moto writes no data capture, so the tests put capture lines
where SageMaker would, under `<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/`."""

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import pytest

from penguins_platform.defs.resources import LocalEndpoint, Monitoring
from penguins_platform.ml import schema
from penguins_platform.serving.capture import CaptureStore
from penguins_platform_tests.capture.test_sagemaker import ADELIE, GENTOO, capture_line
from penguins_platform_tests.conftest import (
    DATA_FILE,
    check_outcomes,
    definitions_with,
    run_deployment,
)
from penguins_platform_tests.deploy.conftest import BUCKET, target
from penguins_platform_tests.servers import free_port

CAPTURE_URI = f"s3://{BUCKET}/capture"
ENDPOINT = "penguins"  # the SageMaker resource's default endpoint name
GROUND_TRUTH_PREFIX = f"capture/ground-truth/{ENDPOINT}/"
SAGEMAKER_LABEL = f"SageMaker data capture s3://{BUCKET}/capture/{ENDPOINT}/"
LABELING = ("production_data", "ground_truth_labels")


@pytest.fixture
def now() -> datetime:
    """This test's clock, in whole seconds as SageMaker's inferenceTime has them, so times
    compare exactly; taken per test, so capture_health finds the capture recent."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def s3(emulator, moto_server):
    return boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")


@pytest.fixture
def local(tmp_path) -> LocalEndpoint:
    """The local endpoint with no server on its port: its capture store is empty until a test
    fills it, and starting no server keeps the tests cheap."""
    return LocalEndpoint(port=free_port(), state_dir=str(tmp_path / "serving"))


def put_capture(s3, at: datetime, lines: list[str]) -> str:
    """One capture file, named as SageMaker names them, in the folder of the hour `at`."""
    key = (f"capture/{ENDPOINT}/primary/{at:%Y/%m/%d/%H}/"
           f"{at:%M-%S}-123-{uuid.uuid4()}.jsonl")  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key=key, Body="\n".join(lines).encode() + b"\n")
    return key


def ground_truth(s3) -> dict[str, list[dict]]:
    """Every ground-truth object under the capture URI, by key, as its parsed lines."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/ground-truth/")
    objects = {}
    for item in listed.get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
        objects[item["Key"]] = [json.loads(line) for line in body.splitlines()]
    return objects


def labels_in(objects: dict[str, list[dict]]) -> dict[str, str]:
    return {
        line["eventMetadata"]["eventId"]: line["groundTruthData"]["data"]
        for lines in objects.values()
        for line in lines
    }


def local_row(request_id: str, at: datetime, penguin: dict, prediction: str) -> tuple:
    """One row as the local endpoint captures it (`serving.capture.COLUMNS`), version 2."""
    features = [penguin.get(name) for name in schema.FEATURES]
    return (request_id, 0, at.isoformat(timespec="microseconds"), "2", *features,
            prediction, 0.95, "[]", "[]", None)  # fmt: skip


def fill_local_store(endpoint: LocalEndpoint, rows: list[tuple]) -> None:
    store = CaptureStore(f"sqlite:///{endpoint.paths.state_dir / 'capture.db'}")
    store.submit(rows)
    store.close()
    assert store.snapshot()["written"] == len(rows), store.snapshot()


def local_targets(endpoint: LocalEndpoint) -> dict[str, str | None]:
    with sqlite3.connect(endpoint.paths.state_dir / "capture.db") as connection:
        return dict(connection.execute("SELECT request_id, target FROM predictions").fetchall())


def run_monitoring(
    instance: dg.DagsterInstance,
    tracking,
    endpoint: LocalEndpoint,
    sagemaker,
    reports,
    *,
    rows: int = 100,
    assets: tuple[str, ...] | None = LABELING,
) -> dg.ExecuteInProcessResult:
    """The real monitoring_job (or `assets` of it), SageMaker enabled, labels equal to the
    predictions."""
    defs = definitions_with(
        mlflow=tracking,
        local=endpoint,
        sagemaker=sagemaker,
        monitoring=Monitoring(ground_truth_quality=1.0, report_dir=str(reports)),
    )
    return defs.resolve_job_def("monitoring_job").execute_in_process(
        run_config={"ops": {"production_data": {"config": {"rows": rows}}}},
        instance=instance,
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
        raise_on_error=False,
    )


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def test_sagemaker_capture_is_read_as_production_data(
    s3, moto_server, instance, mlflow_tracking, local, tmp_path, now
):
    earlier, later = now - timedelta(seconds=20), now - timedelta(seconds=10)
    put_capture(s3, earlier, [
        capture_line("e1", [GENTOO, ADELIE], ["Gentoo", "Adelie"], earlier),
        capture_line("e2", [ADELIE], ["Adelie"], later, encoding="BASE64"),
    ])  # fmt: skip
    sagemaker = target(moto_server, data_capture_uri=CAPTURE_URI)

    result = run_monitoring(
        instance, mlflow_tracking, local, sagemaker, tmp_path, assets=("production_data",)
    )

    assert result.success
    assert check_outcomes(result) == {"capture_health": True}
    data = metadata_of(result, "production_data")
    assert (data["row_count"], data["corrupt_rows_skipped"], data["labeled_count"]) == (3, 0, 0)
    assert data["sources"] == {
        "local": f"capture store {local.paths.state_dir / 'capture.db'}",
        "sagemaker": SAGEMAKER_LABEL,
    }
    # No endpoint is in service in moto, so nothing says which version answered.
    assert data["answered_by_versions"] == {"unknown": 3}
    rows = result.asset_value(dg.AssetKey("production_data"))
    assert rows[["key", "source", "prediction"]].values.tolist() == [
        ["e1:0", "sagemaker", "Gentoo"],
        ["e1:1", "sagemaker", "Adelie"],
        ["e2:0", "sagemaker", "Adelie"],
    ]
    assert rows.loc[0, list(schema.FEATURES)].tolist() == list(GENTOO.values())
    assert rows.loc[2, list(schema.FEATURES)].tolist() == list(ADELIE.values())
    assert rows["captured_at"].tolist() == [earlier, earlier, later]
    assert data["newest_captured_at"] == later.isoformat()


def test_without_a_capture_uri_sagemaker_adds_no_source(
    s3, moto_server, instance, mlflow_tracking, local, tmp_path, now
):
    put_capture(s3, now, [capture_line("e1", [GENTOO], ["Gentoo"], now)])

    result = run_monitoring(
        instance, mlflow_tracking, local, target(moto_server), tmp_path,
        assets=("production_data",),
    )  # fmt: skip

    assert result.success
    data = metadata_of(result, "production_data")
    assert list(data["sources"]) == ["local"] and data["row_count"] == 0


def test_labels_of_sagemaker_rows_go_to_the_bucket_once(
    s3, moto_server, instance, mlflow_tracking, local, tmp_path, now
):
    put_capture(s3, now - timedelta(seconds=5), [
        capture_line("e1", [GENTOO, ADELIE], ["Gentoo", "Adelie"], now - timedelta(seconds=5)),
        capture_line("e2", [ADELIE], ["Chinstrap"], now - timedelta(seconds=4)),
    ])  # fmt: skip
    sagemaker = target(moto_server, data_capture_uri=CAPTURE_URI)

    first = run_monitoring(instance, mlflow_tracking, local, sagemaker, tmp_path)

    assert first.success
    labeled = metadata_of(first, "ground_truth_labels")
    assert (labeled["labeled_now"], labeled["already_labeled"], labeled["labeled_count"]) == (
        3, 0, 3,
    )  # fmt: skip
    objects = ground_truth(s3)
    [key] = objects
    assert key.startswith(GROUND_TRUTH_PREFIX) and key.endswith(".jsonl")
    # Labels are keyed `<eventId>:<row>`, as the rows are; quality 1.0 labels the prediction.
    assert labels_in(objects) == {"e1:0": "Gentoo", "e1:1": "Adelie", "e2:0": "Chinstrap"}
    assert all(line["groundTruthData"]["encoding"] == "CSV" for line in objects[key])

    second = run_monitoring(instance, mlflow_tracking, local, sagemaker, tmp_path)

    assert second.success
    assert metadata_of(second, "production_data")["labeled_count"] == 3  # read back from S3
    again = metadata_of(second, "ground_truth_labels")
    assert (again["labeled_now"], again["already_labeled"]) == (0, 3)
    assert ground_truth(s3) == objects


def test_local_and_sagemaker_rows_merge_by_time_each_tagged_with_its_source(
    s3, moto_server, instance, mlflow_tracking, local, tmp_path, now
):
    def ago(seconds: int) -> datetime:
        return now - timedelta(seconds=seconds)

    fill_local_store(local, [
        local_row("local-50", ago(50), ADELIE, "Adelie"),
        local_row("local-30", ago(30), GENTOO, "Gentoo"),
        local_row("local-10", ago(10), ADELIE, "Adelie"),
    ])  # fmt: skip
    put_capture(s3, ago(40), [
        capture_line("sm-40", [GENTOO], ["Gentoo"], ago(40)),
        capture_line("sm-20", [ADELIE, GENTOO], ["Adelie", "Gentoo"], ago(20)),
    ])  # fmt: skip
    sagemaker = target(moto_server, data_capture_uri=CAPTURE_URI)

    # Six rows over both sources; the newest five are kept, so the oldest local one is not.
    result = run_monitoring(instance, mlflow_tracking, local, sagemaker, tmp_path, rows=5)

    assert result.success
    rows = result.asset_value(dg.AssetKey("production_data"))
    assert rows[["request_id", "source", "captured_at"]].values.tolist() == [
        ["sm-40", "sagemaker", ago(40)],
        ["local-30", "local", ago(30)],
        ["sm-20", "sagemaker", ago(20)],
        ["sm-20", "sagemaker", ago(20)],
        ["local-10", "local", ago(10)],
    ]
    data = metadata_of(result, "production_data")
    assert data["answered_by_versions"] == {"2": 2, "unknown": 3}
    assert (data["oldest_captured_at"], data["newest_captured_at"]) == (
        ago(40).isoformat(),
        ago(10).isoformat(),
    )
    preview = [record.data for record in data["newest_rows"].records]
    assert [(r["request_id"], r["source"]) for r in preview] == [
        ("local-10", "local"),
        ("sm-20", "sagemaker"),
        ("sm-20", "sagemaker"),
        ("local-30", "local"),
        ("sm-40", "sagemaker"),
    ]  # the UI's preview: newest first
    # Each label goes back where its row lives: the SQLite store, or S3 beside the capture.
    assert metadata_of(result, "ground_truth_labels")["labeled_now"] == 5
    assert local_targets(local) == {
        "local-50": None,
        "local-30": "Gentoo",
        "local-10": "Adelie",
    }
    assert labels_in(ground_truth(s3)) == {"sm-40:0": "Gentoo", "sm-20:0": "Adelie",
                                           "sm-20:1": "Gentoo"}  # fmt: skip


def test_a_deployed_endpoints_capture_is_credited_to_its_version_and_reported(
    emulator, s3, moto_server, registry, local, tmp_path, now
):
    import pandas as pd

    from penguins_platform.traffic import sample_records

    instance, tracking = registry
    sagemaker = target(moto_server, data_capture_uri=CAPTURE_URI)
    deployment = run_deployment(
        registry, "sagemaker_endpoint", {"sagemaker": sagemaker}, version="2"
    )
    assert deployment.success
    assert emulator.backend.endpoints[ENDPOINT].data_capture_config["DestinationS3Uri"] == (
        CAPTURE_URI
    )
    # Real answers of the deployed version; moto captures nothing, so write what SageMaker would.
    records = sample_records(pd.read_csv(DATA_FILE), 30, seed=7)
    deployed = sagemaker.target(tracking.registered_model_name)
    lines = []
    for n in range(3):
        batch = records[n * 10 : (n + 1) * 10]
        answer = deployed.invoke(batch)
        assert isinstance(answer, dict)
        species = [p["prediction"] for p in answer["predictions"]]
        lines.append(capture_line(f"req-{n}", batch, species, now - timedelta(seconds=3 - n)))
    put_capture(s3, now - timedelta(seconds=3), lines)

    result = run_monitoring(instance, tracking, local, sagemaker, tmp_path, assets=None)

    assert result.success
    outcomes = check_outcomes(result)
    assert (outcomes["capture_health"], outcomes["production_accuracy"]) == (True, True)
    data = metadata_of(result, "production_data")
    assert data["answered_by_versions"] == {"2": 30}
    assert metadata_of(result, "ground_truth_labels")["labeled_now"] == 30
    report = metadata_of(result, "monitoring_report")
    assert (report["row_count"], report["labeled_count"], report["judged_version"]) == (30, 30, "2")
    assert report["production_accuracy"] == 1.0
    assert "/artifacts/monitoring/" in report["report_in_mlflow"]
    assert len(labels_in(ground_truth(s3))) == 30
