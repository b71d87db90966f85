"""Jobs and their launch config: every knob defaults to its one home, and only given ones move."""

import dagster as dg
import pytest

from penguins_platform import defaults
from penguins_platform.definitions import defs
from penguins_platform.defs.jobs import MAX_RUNTIME_TAG, training_run_config


def _ops(config: dg.RunConfig) -> dict:
    return {op: value["config"] for op, value in config.to_config_dict()["ops"].items()}


def test_the_run_config_is_typed_and_holds_every_default():
    config = training_run_config()
    assert isinstance(config, dg.RunConfig)
    ops = _ops(config)
    assert ops["raw_penguins"] == {
        "location": defaults.DATA_LOCATION,
        "max_bytes": defaults.MAX_DATA_BYTES,
        "with_production_labels": False,
        "production_rows": defaults.PRODUCTION_TRAINING_ROWS,
    }
    assert ops["penguins"] == {"seed": defaults.SEED}
    assert ops["trained_model"] == {
        "epochs": defaults.EPOCHS,
        "batch_size": defaults.BATCH_SIZE,
        "learning_rate": defaults.LEARNING_RATE,
        "seed": defaults.SEED,
    }  # steps_per_execution: unset, a whole epoch per compiled call
    assert ops["cross_validation_scores"] == {**ops["trained_model"], "folds": defaults.FOLDS}
    assert ops["trained_model_accuracy_threshold"] == {"threshold": defaults.THRESHOLD}
    assert ops["registered_model_version_beats_champion"] == {
        "metric": defaults.PROMOTION_METRIC,
        "margin": defaults.PROMOTION_MARGIN,
    }


def test_the_gate_and_production_labels_are_knobs_too():
    ops = _ops(
        training_run_config(
            promotion_metric="f1_score", promotion_margin=0.05, with_production_labels=True
        )
    )
    assert ops["registered_model_version_beats_champion"] == {"metric": "f1_score", "margin": 0.05}
    assert ops["raw_penguins"]["with_production_labels"] is True
    with pytest.raises(ValueError, match="margin"):
        training_run_config(promotion_margin=0.0)


def test_a_given_knob_overrides_only_itself():
    ops = _ops(training_run_config(epochs=7, seed=3))
    assert ops["trained_model"]["epochs"] == ops["cross_validation_scores"]["epochs"] == 7
    assert ops["penguins"]["seed"] == ops["trained_model"]["seed"] == 3
    assert ops["trained_model"]["batch_size"] == defaults.BATCH_SIZE
    assert ops["trained_model_accuracy_threshold"]["threshold"] == defaults.THRESHOLD


def test_the_scaling_knobs_reach_their_ops():
    ops = _ops(training_run_config(steps_per_execution=64, max_data_bytes=1000))
    assert ops["trained_model"]["steps_per_execution"] == 64
    assert ops["cross_validation_scores"]["steps_per_execution"] == 64
    assert ops["raw_penguins"]["max_bytes"] == 1000


def test_the_run_config_validates_against_the_training_job():
    job = defs.resolve_job_def("training_job")
    assert job.run_config_schema.config_type is not None
    result = dg.validate_run_config(job, training_run_config(threshold=0.9).to_config_dict())
    assert result["ops"]["trained_model_accuracy_threshold"]["config"]["threshold"] == 0.9


def test_every_job_has_a_max_runtime():
    for job in ("training_job", "promotion_job", "local_endpoint_job", "deployment_job"):
        assert float(defs.resolve_job_def(job).tags[MAX_RUNTIME_TAG]) > 0, job


def test_training_selects_the_data_and_training_groups():
    job = defs.resolve_job_def("training_job")
    selected = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert selected == {
        "raw_penguins", "penguins", "feature_transformer", "cross_validation_scores",
        "trained_model", "registered_model_version", "champion",
    }  # fmt: skip
