"""The main job's computation in one plain Python process, with no Dagster: the baseline.

Same data, same cleaning, the same holdout kept out, transformers, 5-fold cross-validation
with nested MLflow runs (folds as many at once as the main job trains them:
PENGUINS_FOLD_WORKERS, one per core by default), final fit, the training and holdout rows
recorded, the same pyfunc logged and registered as the challenger, scored on the holdout by
MLflow and promoted (a new store has no champion to beat), all through the platform's plain
code. MLflow location comes from MLFLOW_TRACKING_URI and
MLFLOW_ARTIFACT_LOCATION; `--data` reads another CSV, as `make train ARGS="--data …"` does.
"""

# ruff: noqa: E402 (the collector is tuned before the heavy imports, as in __main__.py)
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The floor runs Python's collector as the platform's own processes do (`runtime.py`), so
# the main job ratio measures Dagster, not a collector setting.
from penguins_platform.runtime import exit_without_final_collection, tune_garbage_collector

tune_garbage_collector()
os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow
from mlflow.tracking import MlflowClient

from penguins_platform import defaults
from penguins_platform.ml import holdout, packaging, schema
from penguins_platform.ml.cleaning import clean_penguins, read_penguins_csv
from penguins_platform.ml.evaluation import cross_validate
from penguins_platform.ml.features import FittedTransformers
from penguins_platform.ml.model import TrainingParameters, train_model
from penguins_platform.project import PROJECT_ROOT
from penguins_platform.tracking import promotion
from penguins_platform.tracking.contract import CHALLENGER_ALIAS, CHECKS_PASSED_TAG


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--data", type=Path, default=PROJECT_ROOT / "data" / "penguins.csv")
    args = options.parse_args()
    uri = os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, registry_uri=uri)
    name = defaults.EXPERIMENT_NAME
    experiment = client.get_experiment_by_name(name) or client.get_experiment(
        client.create_experiment(name, os.environ.get("MLFLOW_ARTIFACT_LOCATION"))
    )
    parent = client.create_run(experiment.experiment_id, run_name="plain").info.run_id

    path = args.data
    cleaned = clean_penguins(read_penguins_csv(path.read_bytes(), str(path)), seed=defaults.SEED)
    split = holdout.split(cleaned)
    penguins = split.training
    transformers = FittedTransformers.fit(penguins)
    parameters = TrainingParameters()

    def on_fold_end(score) -> None:
        fold = client.create_run(
            experiment.experiment_id, tags={"mlflow.parentRunId": parent}
        ).info.run_id
        client.log_metric(fold, "accuracy", score.accuracy)
        client.log_metric(fold, "loss", score.loss)
        client.set_terminated(fold)

    workers = int(os.environ.get("PENGUINS_FOLD_WORKERS") or 0)
    scores = cross_validate(
        penguins, defaults.FOLDS, parameters, on_fold_end=on_fold_end, workers=workers
    )
    client.log_metric(parent, "cv_accuracy_mean", scores.accuracy_mean)
    x = transformers.transform_features(penguins)
    model, history = train_model(x, transformers.encode_target(penguins), parameters)
    for step, loss in enumerate(history.loss):
        client.log_metric(parent, "train_loss", loss, step=step)
    if scores.accuracy_mean < defaults.THRESHOLD:
        raise SystemExit("below threshold")
    example = cleaned[list(schema.FEATURES)].head(defaults.EXAMPLE_ROWS).reset_index(drop=True)
    name = defaults.MODEL_NAME
    promotion.log_training_data(parent, split.training, split.holdout, "plain", schema.TARGET)
    version = packaging.log_pyfunc_model(parent, model, transformers, example, name)
    packaging.publish_version(client, name, version, {CHECKS_PASSED_TAG: "true"}, CHALLENGER_ALIAS)
    scoring = client.create_run(experiment.experiment_id, tags={"mlflow.parentRunId": parent})
    score = promotion.score_version(
        name, version, split.holdout, schema.TARGET, scoring.info.run_id
    )
    client.set_terminated(scoring.info.run_id)
    decision = promotion.judge(score, None, defaults.PROMOTION_METRIC, defaults.PROMOTION_MARGIN)
    if decision.passed:
        promotion.promote(
            client, name, version, promotion.Promotion("first", "plain", "bench", None)
        )
    client.set_terminated(parent)
    print(f"registered version {version}: accuracy {scores.accuracy_mean:.4f}")


if __name__ == "__main__":
    main()
    exit_without_final_collection(0)
