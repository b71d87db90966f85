"""Jobs: named selections of the lineage that users and schedules launch."""

from typing import Any

import dagster as dg

from penguins_platform.project import DEFAULT_DATA_LOCATION

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("training"),
    description=(
        "Raw penguins to a registered MLflow model version, gated by the data checks and "
        "the accuracy threshold."
    ),
)

local_endpoint_job = dg.define_asset_job(
    "local_endpoint_job",
    selection=dg.AssetSelection.assets("local_endpoint"),
    description="Serve the champion (or a chosen version) on the local HTTP endpoint.",
)

deployment_job = dg.define_asset_job(
    "deployment_job",
    selection=dg.AssetSelection.groups("deployment"),
    description=(
        "Deploy one registered version to the enabled targets. The sensor launches it for each "
        "new version; launch it yourself with a `version` in each asset's config to roll back."
    ),
)


def training_run_config(
    *,
    data: str = DEFAULT_DATA_LOCATION,
    threshold: float = 0.7,
    epochs: int = 50,
    batch_size: int = 32,
    learning_rate: float = 0.01,
    folds: int = 5,
    seed: int = 42,
    log_level: str = "INFO",
) -> dict[str, Any]:
    """The launchpad config of `training_job`, with every knob in one call.

    The same seed drives the shuffle, the weight initialisation and the fold split, and the
    same fit settings drive cross-validation and the final model, so the score measures the
    recipe that produced the registered model.
    """
    fit = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}
    return {
        "loggers": {"console": {"config": {"log_level": log_level}}},
        "ops": {
            "raw_penguins": {"config": {"location": data}},
            "penguins": {"config": {"seed": seed}},
            "cross_validation_scores": {"config": {**fit, "folds": folds}},
            "trained_model": {"config": fit},
            "trained_model_accuracy_threshold": {"config": {"threshold": threshold}},
        },
    }
