"""`python -m penguins_platform train`: the main job, as `make train` runs it.

It materializes the training lineage into the local Dagster instance (the one `make dev`
opens), then prints the registered version and its cross-validated accuracy. Every knob
of the launchpad is a flag here too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from penguins_platform.project import DEFAULT_DATA_LOCATION, prepare_dagster_home


def training_run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The launchpad config equivalent to these flags."""
    fit = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
    }
    return {
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
        "ops": {
            "raw_penguins": {"config": {"location": args.data}},
            "penguins": {"config": {"seed": args.seed}},
            "cross_validation_scores": {"config": {**fit, "folds": args.folds}},
            "trained_model": {"config": fit},
            "trained_model_accuracy_threshold": {"config": {"threshold": args.threshold}},
        }
    }


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="penguins_platform", description=__doc__.split("\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="materialize the training lineage")
    train.add_argument("--data", default=DEFAULT_DATA_LOCATION, help="CSV file, folder or s3:// prefix")
    train.add_argument("--threshold", type=float, default=0.7, help="minimum mean CV accuracy")
    train.add_argument("--epochs", type=int, default=50)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=0.01)
    train.add_argument("--folds", type=int, default=5)
    train.add_argument("--seed", type=int, default=42)
    return root


def train(args: argparse.Namespace) -> int:
    prepare_dagster_home()
    import dagster as dg

    from penguins_platform.definitions import defs

    job = defs.resolve_job_def("training_job")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            run_config=training_run_config(args), instance=instance, raise_on_error=False
        )
        return report(result)


def report(result: Any) -> int:
    """Print what a user needs after `make train`: the version, or why there is none."""
    if result.success:
        version = result.output_for_node("registered_model_version")
        scores = result.output_for_node("cross_validation_scores")
        print(
            f"Registered penguins version {version}: cross-validated accuracy "
            f"{scores.accuracy_mean:.4f} ± {scores.accuracy_std:.4f} (run {result.run_id})"
        )
        return 0
    print(f"Training run {result.run_id} failed:", file=sys.stderr)
    for event in result.all_events:
        if event.is_step_failure and not _is_check_failure(event):
            error = event.step_failure_data.error
            message = error.cause.message if error and error.cause else (error.message if error else "")
            print(f"  step {event.step_key}: {message.strip()}", file=sys.stderr)
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                print(
                    f"  check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
                    f"failed: {evaluation.description}",
                    file=sys.stderr,
                )
    if not any(e.is_step_failure for e in result.all_events):
        print("  no step failed; the run could not start (see the errors above)", file=sys.stderr)
    return 1


def _is_check_failure(event: Any) -> bool:
    """A blocking check's step failure repeats the check's own message, printed already."""
    error = event.step_failure_data.error
    return bool(error) and error.cls_name == "DagsterAssetCheckFailedError"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return train(args)
