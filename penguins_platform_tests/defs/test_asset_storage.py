"""AssetStorage: asset values in S3 once a bucket is set, under the instance's folder otherwise.

The S3 tests drive the real training job against moto in server mode, with boto3 (and so
dagster-aws) pointed at it through AWS_ENDPOINT_URL, as a deployment points it at S3.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from penguins_platform.defs.event_log import failure_reasons
from penguins_platform.defs.jobs import training_run_config
from penguins_platform.defs.resources import AssetStorage, MlflowTracking, S3Storage
from penguins_platform_tests.conftest import (
    LINEAGE_ASSETS,
    REPO_ROOT,
    definitions_with,
    materialized_assets,
    model_versions,
    run_log,
    tracking_resource,
)

BUCKET = "penguins-assets"
PREFIX = "runs"
# Seeded, so every run scores the same: 20 epochs clear the 0.7 threshold (about 0.79) at
# two thirds of the default's cost.
EPOCHS = 20
# The inputs of registered_model_version, which a run of that asset alone must read back.
REGISTRATION_INPUTS = (
    "penguins",
    "feature_transformer",
    "trained_model",
    "cross_validation_scores",
)


def run_training_with(
    instance: dg.DagsterInstance,
    mlflow: MlflowTracking,
    io_manager: AssetStorage,
    selection: list[str] | None = None,
) -> dg.ExecuteInProcessResult:
    """`training_job` (or the `selection` of it) with its asset values in `io_manager`."""
    test_defs = definitions_with(mlflow=mlflow, s3=S3Storage(), io_manager=io_manager)
    return test_defs.resolve_job_def("training_job").execute_in_process(
        run_config=training_run_config(epochs=EPOCHS),
        instance=instance,
        asset_selection=[dg.AssetKey(key) for key in selection] if selection else None,
        raise_on_error=False,
    )


@dataclass(frozen=True)
class S3Runs:
    """What a full training run and a later registration-only run left in S3 and MLflow."""

    training: dg.ExecuteInProcessResult
    registration: dg.ExecuteInProcessResult
    keys_after_training: list[str]
    values: dict[str, object]  # key under the prefix to its unpickled object, after training
    registered_after_registration: object
    registration_log: str
    registration_metadata: dict
    versions: list[str]


@pytest.fixture(scope="module")
def s3_runs(sqlite_store, module_moto_server) -> S3Runs:
    """One training run into a moto bucket, then a run of registered_model_version alone.

    Module-scoped, so the file pays for one training run: the variables are set here rather
    than by the per-test `moto_server` fixture, and are gone before any test runs; the tests
    read what was collected.
    """
    import boto3

    url = module_moto_server
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL", url)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)

        def stored(key: str) -> object:
            body = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")["Body"].read()
            return pickle.loads(body)

        def keys() -> list[str]:
            listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
            return sorted(o["Key"].removeprefix(f"{PREFIX}/") for o in listing["Contents"])

        model_name = f"penguins-s3-{uuid.uuid4().hex[:8]}"
        tracking = tracking_resource(sqlite_store, model_name)
        storage = AssetStorage(bucket=BUCKET, prefix=PREFIX)
        training = run_training_with(instance, tracking, storage)
        assert training.success, failure_reasons(training.all_events)
        after_training = keys()
        values = {key: stored(key) for key in LINEAGE_ASSETS & set(after_training)}

        registration = run_training_with(
            instance, tracking, storage, selection=["registered_model_version"]
        )
        # The same model again: registered, then refused by the gate (a tie keeps the
        # champion), which is not what this test is about.
        assert "registered_model_version" in materialized_assets(registration), failure_reasons(
            registration.all_events
        )
        [event] = registration.get_asset_materialization_events()
        metadata = event.step_materialization_data.materialization.metadata
        runs = S3Runs(
            training=training,
            registration=registration,
            keys_after_training=after_training,
            values=values,
            registered_after_registration=stored("registered_model_version"),
            registration_log=run_log(instance, registration),
            registration_metadata={k: v.value for k, v in metadata.items()},
            versions=model_versions(sqlite_store.tracking_uri, model_name),
        )
    return runs


def test_training_writes_one_object_per_asset_under_the_prefix(s3_runs):
    assets = [key for key in s3_runs.keys_after_training if not key.startswith("storage/")]
    # `champion` is the registry's alias: its record lives in MLflow, and it stores no value.
    assert sorted(assets) == sorted(LINEAGE_ASSETS - {"champion"})


def test_the_fold_steps_outputs_live_under_the_runs_storage(s3_runs):
    """The cross-validation graph's steps are op outputs: Dagster keys them by run and step."""
    run_id = s3_runs.training.run_id
    steps = {
        key.split("/")[2]
        for key in s3_runs.keys_after_training
        if key.startswith(f"storage/{run_id}/")
    }
    assert "cross_validation_scores.split_folds" in steps
    assert {f"cross_validation_scores.score_fold--fold_{n}" for n in range(1, 6)} <= steps
    others = {key for key in s3_runs.keys_after_training if "/" in key}
    assert all(key.startswith(f"storage/{run_id}/") for key in others), others


def test_a_stored_value_is_what_the_run_produced(s3_runs, cleaned):
    penguins = s3_runs.values["penguins"]
    pd.testing.assert_frame_equal(penguins, cleaned)
    materialized = s3_runs.training.asset_materializations_for_node("penguins")[0]
    assert len(penguins) == materialized.metadata["dagster/row_count"].value == 344
    scores = s3_runs.values["cross_validation_scores"]
    assert len(scores.folds) == 5 and scores.accuracy_mean >= 0.7
    assert s3_runs.values["registered_model_version"] == s3_runs.versions[0] == "1"


def test_a_later_run_of_one_asset_reads_its_inputs_from_s3(s3_runs):
    steps = {
        e.step_key for e in s3_runs.registration.all_events if e.event_type_value == "STEP_START"
    }
    assert steps == {"registered_model_version", "registered_model_version_beats_champion"}
    for name in REGISTRATION_INPUTS:
        assert f"Loading S3 object from: s3://{BUCKET}/{PREFIX}/{name}" in s3_runs.registration_log
    assert s3_runs.versions == ["1", "2"]
    assert s3_runs.registration_metadata["version"] == 2
    assert s3_runs.registered_after_registration == "2"


def test_a_missing_bucket_fails_the_run_naming_it_and_registers_nothing(
    moto_server, monkeypatch, instance, mlflow_tracking, sqlite_store, model_name
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    result = run_training_with(instance, mlflow_tracking, AssetStorage(bucket="no-such-bucket"))
    assert not result.success
    reasons = "\n".join(failure_reasons(result.all_events))
    assert "asset storage bucket 'no-such-bucket' (PENGUINS_IO_BUCKET) cannot be used" in reasons
    assert result.get_asset_materialization_events() == []
    assert model_versions(sqlite_store.tracking_uri, model_name) == []


def test_the_bucket_and_client_settings_reach_dagster_aws(moto_server):
    import boto3
    from dagster_aws.s3 import S3PickleIOManager

    boto3.client("s3", endpoint_url=moto_server, region_name="eu-west-1").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    storage = AssetStorage(
        bucket=BUCKET,
        prefix="team/penguins",
        s3=S3Storage(region_name="eu-west-1", endpoint_url=moto_server),
    )
    manager = storage.create_io_manager(dg.build_init_resource_context())
    assert isinstance(manager, S3PickleIOManager)
    assert (manager.s3_bucket, manager.s3_prefix) == (BUCKET, "team/penguins")
    assert manager.s3_resource.region_name == "eu-west-1"
    assert manager.s3_resource.endpoint_url == moto_server


@dg.asset
def colony() -> list[str]:
    return ["Adelie", "Gentoo"]


@dg.asset
def colony_size(colony: list[str]) -> int:
    return len(colony)


def test_without_a_bucket_values_live_under_the_instance_storage(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        resources = {"io_manager": AssetStorage()}
        assert dg.materialize([colony, colony_size], resources=resources, instance=instance).success
        storage = Path(instance.storage_directory())
        assert storage.is_relative_to(tmp_path)
        assert pickle.loads((storage / "colony").read_bytes()) == ["Adelie", "Gentoo"]
        assert pickle.loads((storage / "colony_size").read_bytes()) == 2

        # A later run of the downstream asset alone reads its input back from that file.
        (storage / "colony").write_bytes(pickle.dumps(["Chinstrap"]))
        again = dg.materialize(
            [colony, colony_size], resources=resources, instance=instance, selection=[colony_size]
        )
        assert again.success
        assert pickle.loads((storage / "colony_size").read_bytes()) == 1


@pytest.mark.parametrize("bucket", [None, BUCKET], ids=["no-bucket", "bucket"])
def test_loading_the_definitions_does_not_import_dagster_aws(bucket):
    """The choice of I/O manager is made when a run starts, so a bucket costs no import."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PENGUINS_IO_BUCKET", "PENGUINS_IO_PREFIX", "PENGUINS_EXECUTOR")
    }
    if bucket:
        env["PENGUINS_IO_BUCKET"] = bucket
    probe = "import penguins_platform.definitions, sys; print('dagster_aws' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
