"""`python -m penguins_platform train`: the main job, as `make train` runs it.

It materializes the training lineage into the local Dagster instance (the one `make dev`
opens), then prints the registered version and its cross-validated accuracy. Every knob
of the launchpad is a flag here too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from penguins_platform.ml.schema import SAMPLE_PENGUIN
from penguins_platform.project import (
    DEFAULT_DATA_LOCATION,
    PROJECT_ROOT,
    default_tracking_uri,
    prepare_dagster_home,
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="penguins_platform", description=__doc__.split("\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="materialize the training lineage",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument(
        "--data", default=DEFAULT_DATA_LOCATION, help="CSV file, folder or s3:// prefix"
    )
    train.add_argument("--threshold", type=float, default=0.7, help="minimum mean CV accuracy")
    train.add_argument("--epochs", type=int, default=50, help="passes over the data per fit")
    train.add_argument("--batch-size", type=int, default=32, help="rows per SGD step")
    train.add_argument("--learning-rate", type=float, default=0.01, help="SGD learning rate")
    train.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    train.add_argument("--seed", type=int, default=42, help="seed of shuffle, weights, folds")
    serve = commands.add_parser("serve", help="serve the champion on the local endpoint")
    serve.add_argument("--version", default=None, help="serve this version, not the champion")
    commands.add_parser("stop", help="stop the local endpoint")
    sample = commands.add_parser("sample", help="send the reference's sample request")
    sample.add_argument("--url", default=None, help="endpoint URL; default: the local endpoint")
    dev = commands.add_parser("dev", help="open the Dagster UI on the local instance")
    dev.add_argument("--port", type=int, default=3000)
    ui = commands.add_parser("mlflow-ui", help="open the MLflow UI on the local store")
    ui.add_argument("--port", type=int, default=5000)
    return root


def serve(args: argparse.Namespace) -> int:
    """Materialize `local_endpoint` on the local instance, so the deployment shows in the UI."""
    prepare_dagster_home()
    import dagster as dg

    from penguins_platform.definitions import defs

    config = {"version": args.version} if args.version else {}
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "ops": {"local_endpoint": {"config": config}},
    }
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("local_endpoint_job").execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )
    if not result.success:
        print(f"Deployment run {result.run_id} failed:", file=sys.stderr)
        for reason in failure_reasons(result.all_events):
            print(f"  {reason}", file=sys.stderr)
        return 1
    [event] = result.get_asset_materialization_events()
    deployed = event.step_materialization_data.materialization.metadata
    endpoint = local_endpoint()
    print(
        f"Serving penguins version {deployed['serving_version'].value} at {endpoint.url} "
        f"(log {endpoint.paths.log_file}); `make sample` to try it, `make stop` to stop it."
    )
    return 0


def local_endpoint() -> Any:
    """The endpoint resource as the definitions configure it, with its EnvVars resolved."""
    from penguins_platform.definitions import defs

    return defs.resources["endpoint"].process_config_and_initialize()


def stop(args: argparse.Namespace) -> int:
    endpoint = local_endpoint()
    stopped = endpoint.stop()
    print(f"Stopped the endpoint at {endpoint.url}." if stopped else "No endpoint was running.")
    return 0


def sample(args: argparse.Namespace) -> int:
    """POST the reference program's sample penguin and print the answer."""
    import json

    from penguins_platform.serving.service import request_json

    url = args.url or local_endpoint().url
    try:
        status, body = request_json(f"{url}/invocations", {"inputs": [SAMPLE_PENGUIN]})
    except OSError as error:
        print(
            f"No endpoint answers at {url} ({error}); start one with `make serve`.", file=sys.stderr
        )
        return 1
    print(json.dumps(body, indent=2))
    return 0 if status == 200 else 1


def dev(args: argparse.Namespace) -> int:
    """`dagster dev` on the instance that `train` wrote to, so its runs show in the UI."""
    prepare_dagster_home()
    workspace = PROJECT_ROOT / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(workspace), "-p", str(args.port)]
    os.execv(command[0], command)


def mlflow_ui(args: argparse.Namespace) -> int:
    """The MLflow UI on the store `train` wrote to (or on $MLFLOW_TRACKING_URI's database)."""
    store = os.environ.get("MLFLOW_TRACKING_URI", default_tracking_uri())
    # One process, not MLflow's job-execution workers: a local UI needs none of them.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow), "server", "--backend-store-uri", store,
        "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1",
    ]  # fmt: skip
    os.execv(command[0], command)


def train(args: argparse.Namespace) -> int:
    prepare_dagster_home()
    import dagster as dg

    from penguins_platform.definitions import defs
    from penguins_platform.jobs import training_run_config

    job = defs.resolve_job_def("training_job")
    with dg.DagsterInstance.get() as instance:
        run_config = training_run_config(
            data=args.data,
            threshold=args.threshold,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            folds=args.folds,
            seed=args.seed,
        )
        result = job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
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
    for reason in failure_reasons(result.all_events):
        print(f"  {reason}", file=sys.stderr)
    return 1


def failure_reasons(events: Sequence[Any]) -> list[str]:
    """One line per failed check, failed step or failed resource, with the user-level error."""
    reasons = []
    for event in events:
        kind = event.event_type_value
        if kind == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            evaluation = event.event_specific_data
            reasons.append(
                f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} failed: "
                f"{evaluation.description}"
            )
        elif kind == "STEP_FAILURE":
            error = root_error(event.step_failure_data.error)
            if error is not None and error.cls_name != "DagsterAssetCheckFailedError":
                reasons.append(f"step {event.step_key} failed: {error.message.strip()}")
        elif kind == "RESOURCE_INIT_FAILURE":
            error = root_error(event.event_specific_data.error)
            if error is not None:
                reasons.append(f"resources could not start: {error.message.strip()}")
    return reasons or ["the run failed before any step; see the log above"]


def root_error(error: Any) -> Any:
    """Skip Dagster's wrapper errors down to the exception the user's code raised."""
    while error is not None and error.cls_name.startswith("Dagster") and error.cause is not None:
        error = error.cause
    return error


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {
        "train": train,
        "serve": serve,
        "stop": stop,
        "sample": sample,
        "dev": dev,
        "mlflow-ui": mlflow_ui,
    }
    return commands[args.command](args)
