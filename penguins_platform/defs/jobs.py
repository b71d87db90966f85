"""Jobs: named selections of the lineage that users, the sensor and schedules launch.

Every job carries a `dagster/max_runtime` tag: with run monitoring on (infra/dagster/local.yaml),
the daemon fails a run that outlives it and says so, and `make train` stops its in-process
run at the same limit. No run hangs forever.
"""

from typing import Any

import dagster as dg

from penguins_platform import defaults
from penguins_platform.defs.data import CleaningConfig, RawPenguinsConfig
from penguins_platform.defs.registry import ChallengerGateConfig
from penguins_platform.defs.training import (
    AccuracyThresholdConfig,
    CrossValidationConfig,
    TrainingConfig,
)

MAX_RUNTIME_TAG = "dagster/max_runtime"
# Every deployment run carries this tag. Every one of them touches the local endpoint, so the
# production run queue's limit of one run per value (infra/dagster/dagster.yaml,
# infra/helm/values.yaml) means one deployment per target at a time.
DEPLOYMENT_TAG = "penguins/deployment"
DEPLOYMENT_TAGS = {
    MAX_RUNTIME_TAG: str(defaults.DEPLOYMENT_MAX_RUNTIME_SECONDS),
    DEPLOYMENT_TAG: "endpoints",
}

# A training run that monitoring requested carries these: the UI's run list shows why.
RETRAINING_TAG = "penguins/retraining"
RETRAINING_REASON_TAG = "penguins/retraining_reason"
MONITORING_RUN_TAG = "penguins/monitoring_run"

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("data", "training"),
    description=(
        "Raw penguins to a registered MLflow model version, gated by the data checks and "
        "the accuracy threshold, then to the champion if it beats the champion on the holdout."
    ),
    tags={MAX_RUNTIME_TAG: str(defaults.TRAINING_MAX_RUNTIME_SECONDS)},
)

promotion_job = dg.define_asset_job(
    "promotion_job",
    selection=dg.AssetSelection.assets("champion"),
    description=(
        "Promote a version by hand, or roll back: set `version`, `reason` and `requested_by` "
        "in the champion's config (`make promote VERSION=n REASON=...`). The champion sensor "
        "then deploys it."
    ),
    tags={MAX_RUNTIME_TAG: str(defaults.DEPLOYMENT_MAX_RUNTIME_SECONDS)},
)

local_endpoint_job = dg.define_asset_job(
    "local_endpoint_job",
    selection=dg.AssetSelection.assets("local_endpoint"),
    description="Serve the champion (or a chosen version) on the local HTTP endpoint.",
    tags=DEPLOYMENT_TAGS,
)

deployment_job = dg.define_asset_job(
    "deployment_job",
    selection=dg.AssetSelection.groups("deployment"),
    description=(
        "Deploy one registered version to the enabled targets. The sensor launches it for each "
        "new version; launch it yourself with a `version` in each asset's config to roll back."
    ),
    tags=DEPLOYMENT_TAGS,
)


monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.groups("monitoring"),
    description=(
        "Read what the endpoints captured, label it, and compare it with the training data: "
        "drift, production accuracy and capture health. The monitoring schedule runs it."
    ),
    tags={MAX_RUNTIME_TAG: str(defaults.MONITORING_MAX_RUNTIME_SECONDS)},
)


def training_run_config(
    *,
    data: str | None = None,
    threshold: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    folds: int | None = None,
    seed: int | None = None,
    steps_per_execution: int | None = None,
    max_data_bytes: int | None = None,
    with_production_labels: bool | None = None,
    promotion_metric: str | None = None,
    promotion_margin: float | None = None,
    log_level: str = "INFO",
) -> dg.RunConfig:
    """The launchpad config of `training_job`. Each knob overrides its default only when given.

    The same seed drives the shuffle, the weight initialisation and the fold split, and the
    same fit settings drive cross-validation and the final model, so the score measures the
    recipe that produced the registered model.
    """

    def given(**values: object) -> dict[str, Any]:
        """The knobs given, as keyword arguments for a config class, which checks them."""
        return {key: value for key, value in values.items() if value is not None}

    fit = given(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        steps_per_execution=steps_per_execution,
    )
    return dg.RunConfig(
        ops={
            "raw_penguins": RawPenguinsConfig(
                **given(
                    location=data,
                    max_bytes=max_data_bytes,
                    with_production_labels=with_production_labels,
                )
            ),
            "penguins": CleaningConfig(**given(seed=seed)),
            "cross_validation_scores": CrossValidationConfig(**fit, **given(folds=folds)),
            "trained_model": TrainingConfig(**fit),
            "trained_model_accuracy_threshold": AccuracyThresholdConfig(
                **given(threshold=threshold)
            ),
            "registered_model_version_beats_champion": ChallengerGateConfig(
                **given(metric=promotion_metric, margin=promotion_margin)
            ),
        },
        loggers={"console": {"config": {"log_level": log_level}}},
    )
