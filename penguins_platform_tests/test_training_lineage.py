"""The whole training lineage, materialized through Dagster against a real MLflow store."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from penguins_platform import defaults
from penguins_platform.defs.registry import GateError
from penguins_platform.ml.schema import SAMPLE_PENGUIN
from penguins_platform.tracking.contract import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    CHECKS_PASSED_TAG,
    DAGSTER_RUN_TAG,
)
from penguins_platform_tests.conftest import (
    LINEAGE_ASSETS,
    QUICK_TRAINING,
    check_outcomes,
    materialized_assets,
    model_versions,
    run_training,
    step_error,
    tracking_resource,
)

# A quick training that its accuracy threshold refuses.
UNREGISTRABLE = {**QUICK_TRAINING, "threshold": 0.99}


@pytest.fixture(scope="module")
def trained(sqlite_store, train_lineage):
    """One full default run, shared by the read-only assertions of this module."""
    name = "penguins-lineage"
    with dg.instance_for_test() as instance:
        result = train_lineage(instance, tracking_resource(sqlite_store, name))
        yield result, instance, sqlite_store, name


def test_whole_lineage_materializes_and_every_check_passes(trained):
    result, *_ = trained
    assert result.success
    assert materialized_assets(result) == LINEAGE_ASSETS
    assert check_outcomes(result) == {
        "required_columns": True,
        "measurements_are_numeric": True,
        "species_are_known": True,
        "categories_are_known": True,
        "measurements_are_plausible": True,
        "missing_values_are_bounded": True,
        "accuracy_threshold": True,
        "beats_champion": True,
    }


def test_registers_a_champion_version_tagged_with_its_provenance(trained):
    from mlflow.tracking import MlflowClient

    result, instance, store, name = trained
    client = MlflowClient(store.tracking_uri, registry_uri=store.tracking_uri)
    version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert str(version.version) == result.output_for_node("registered_model_version") == "1"
    raw_event = instance.get_latest_materialization_event(dg.AssetKey("raw_penguins"))
    assert (
        version.tags["data_version"] == raw_event.asset_materialization.tags["dagster/data_version"]
    )
    assert version.tags[DAGSTER_RUN_TAG] == result.run_id
    assert version.tags[CHECKS_PASSED_TAG] == "true"
    assert float(version.tags["cv_accuracy_mean"]) > defaults.THRESHOLD
    assert float(version.tags["accuracy_threshold"]) == pytest.approx(defaults.THRESHOLD)


def test_registered_model_loads_from_the_registry_and_predicts(trained):
    import mlflow.pyfunc

    _, _, store, name = trained
    mlflow.set_tracking_uri(store.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION_ALIAS}")
    answer = model.predict(pd.DataFrame([SAMPLE_PENGUIN, {"island": "Dream"}]))
    assert answer["prediction"].tolist()[0] == "Gentoo"
    assert answer["confidence"].between(0, 1).all()
    assert len(answer) == 2, "a record with only an island still gets a prediction"
    signature = model.metadata.signature.inputs.to_dict()
    assert {c["name"]: c["required"] for c in signature} == {k: False for k in SAMPLE_PENGUIN}


def test_registered_model_pins_its_requirements_and_ships_no_dagster(trained):
    import mlflow.artifacts

    _, _, store, name = trained
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/1", tracking_uri=store.tracking_uri
        )
    )
    pinned = [line for line in (local / "requirements.txt").read_text().splitlines() if line]
    assert all("==" in line for line in pinned), pinned
    assert {line.split("==")[0] for line in pinned} >= {"mlflow", "keras", "jax", "scikit-learn"}
    assert not any("dagster" in line for line in pinned)
    shipped = sorted(p.name for p in (local / "code").rglob("*.py"))
    assert "pyfunc.py" in shipped
    assert "definitions.py" not in shipped
    assert not (local / "uv.lock").exists(), "the platform's lock file is not the model's env"
    assert (local / "artifacts" / "model.keras").exists()


def test_one_parent_mlflow_run_with_a_nested_run_per_fold(trained):
    from mlflow.tracking import MlflowClient

    result, _, store, _ = trained
    client = MlflowClient(store.tracking_uri)
    experiment = client.get_experiment_by_name("penguins-tests")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.dagster_run_id = '{result.run_id}'"
    )
    assert len(runs) == 1
    parent = runs[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["cv_accuracy_mean"] > defaults.THRESHOLD
    assert parent.data.params["folds"] == "5"
    assert parent.data.tags["registered_model_version"] == "1"
    history = client.get_metric_history(parent.info.run_id, "train_loss")
    assert len(history) == 50
    nested = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    # One run a fold, and the gate's evaluation of the challenger (there is no champion yet).
    expected = [f"fold-{i}" for i in range(1, 6)] + ["challenger-v1"]
    assert sorted(r.info.run_name for r in nested) == sorted(expected)


def test_metadata_shows_counts_folds_and_plots(trained):
    _, instance, *_ = trained

    def meta(asset: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    raw = meta("raw_penguins")
    assert raw["dagster/row_count"] == 344
    assert len(raw["content_hash"]) == 64
    assert len(raw["preview"].records) == 10
    cleaned = meta("penguins")
    assert cleaned["rows_Adelie"] + cleaned["rows_Chinstrap"] + cleaned["rows_Gentoo"] == 344
    scores = meta("cross_validation_scores")
    assert len(scores["folds"].records) == 5
    assert scores["confusion_matrix"].startswith("![confusion matrix](data:image/png;base64,")
    assert defaults.THRESHOLD < scores["accuracy_mean"] <= 1.0
    model = meta("trained_model")
    assert model["training_curve"].startswith("![training curve](data:image/png;base64,")
    registered = meta("registered_model_version")
    assert registered["version"] == 1
    assert registered["model_uri"].startswith("models:/penguins-lineage/1")


def test_each_run_registers_a_new_version_and_an_identical_one_keeps_the_champion(
    instance, mlflow_tracking, sqlite_store, model_name, train_lineage
):
    from mlflow.tracking import MlflowClient

    assert train_lineage(instance, mlflow_tracking, **QUICK_TRAINING).success
    again = train_lineage(instance, mlflow_tracking, **QUICK_TRAINING)
    assert check_outcomes(again)["beats_champion"] is False, "a tie is not a win"
    client = MlflowClient(sqlite_store.tracking_uri, registry_uri=sqlite_store.tracking_uri)
    assert model_versions(sqlite_store.tracking_uri, model_name) == ["1", "2"]
    assert str(client.get_model_version_by_alias(model_name, CHAMPION_ALIAS).version) == "1"
    assert str(client.get_model_version_by_alias(model_name, CHALLENGER_ALIAS).version) == "2"


def test_threshold_above_cv_accuracy_blocks_registration(
    instance, mlflow_tracking, sqlite_store, model_name, train_lineage
):
    result = train_lineage(instance, mlflow_tracking, **UNREGISTRABLE)
    assert not result.success
    assert check_outcomes(result)["accuracy_threshold"] is False
    assert "registered_model_version" not in materialized_assets(result)
    assert "trained_model" in materialized_assets(result)
    assert model_versions(sqlite_store.tracking_uri, model_name) == []


def test_registering_alone_refuses_a_model_that_failed_its_check(
    instance, mlflow_tracking, sqlite_store, model_name, train_lineage
):
    assert not train_lineage(instance, mlflow_tracking, **UNREGISTRABLE).success
    later = _register_only(instance, mlflow_tracking)
    assert not later.success
    cause = step_error(later, "registered_model_version").cause
    assert cause is not None
    assert cause.cls_name == GateError.__name__
    assert "failed accuracy_threshold" in cause.message
    assert model_versions(sqlite_store.tracking_uri, model_name) == []


def test_registering_alone_accepts_a_model_that_passed_its_check(
    instance, mlflow_tracking, sqlite_store, model_name, train_lineage
):
    assert train_lineage(instance, mlflow_tracking, **QUICK_TRAINING).success
    again = _register_only(instance, mlflow_tracking)
    assert "registered_model_version" in materialized_assets(again)
    assert model_versions(sqlite_store.tracking_uri, model_name) == ["1", "2"]


def _register_only(instance, mlflow_tracking) -> dg.ExecuteInProcessResult:
    return run_training(instance, mlflow_tracking, selection=["registered_model_version"])


def test_registered_pyfunc_matches_its_keras_network_on_the_whole_dataset(trained):
    """The served fast path is the trained network: the registry's own artifacts agree."""
    import joblib
    import mlflow.artifacts
    import mlflow.pyfunc
    import numpy as np

    from penguins_platform.ml.model import import_keras
    from penguins_platform_tests.conftest import DATA_FILE

    _, _, store, name = trained
    mlflow.set_tracking_uri(store.tracking_uri)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/1", tracking_uri=store.tracking_uri
        )
    )
    network = import_keras().models.load_model(local / "artifacts" / "model.keras")
    transformers = joblib.load(local / "artifacts" / "transformers.joblib")
    data = pd.read_csv(DATA_FILE).replace({"sex": {".": None}})
    features = data.drop(columns=["species"])
    expected = np.asarray(network.predict(transformers.transform_features(features), verbose=0))

    answer = mlflow.pyfunc.load_model(f"models:/{name}/1").predict(features)
    assert np.abs(answer["confidence"].to_numpy() - expected.max(axis=1)).max() < 1e-6
    species = np.array(["Adelie", "Chinstrap", "Gentoo"])[expected.argmax(axis=1)]
    assert answer["prediction"].tolist() == species.tolist()


def test_per_step_dispatch_registers_the_same_model(trained, instance, sqlite_store, train_lineage):
    """`steps_per_execution=1` is Keras's own per-step `fit`, one fold at a time: the scores
    and the registered model's predictions equal the default's (a compiled epoch a call,
    folds in threads) within 1e-6."""
    import mlflow.pyfunc
    import numpy as np

    from penguins_platform_tests.conftest import DATA_FILE

    default_run, _, store, default_name = trained
    name = "penguins-per-step"
    per_step = train_lineage(instance, tracking_resource(store, name), steps_per_execution=1)
    assert per_step.success
    ours = default_run.output_for_node("cross_validation_scores")
    theirs = per_step.output_for_node("cross_validation_scores")
    for a, b in zip(ours.folds, theirs.folds, strict=True):
        assert abs(a.accuracy - b.accuracy) <= 1e-6 and abs(a.loss - b.loss) <= 1e-6
    assert ours.confusion_matrix == theirs.confusion_matrix

    mlflow.set_tracking_uri(store.tracking_uri)
    features = pd.read_csv(DATA_FILE).replace({"sex": {".": None}}).drop(columns=["species"])
    answers = [
        mlflow.pyfunc.load_model(f"models:/{model}/1").predict(features)
        for model in (default_name, name)
    ]
    confidence = [answer["confidence"].to_numpy() for answer in answers]
    assert np.abs(confidence[0] - confidence[1]).max() <= 1e-6
    assert answers[0]["prediction"].tolist() == answers[1]["prediction"].tolist()
