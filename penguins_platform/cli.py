"""`python -m penguins_platform COMMAND`: what `make train`, `make serve` and the rest run.

`train` materializes the training lineage into the local Dagster instance (the one `make dev`
opens), then prints the registered version and its cross-validated accuracy. Every knob of
the launchpad is a flag here too; a flag left out keeps the launchpad's default. `serve` and
`monitor` run their jobs the same way (`runner.py`), and the other commands talk to the
endpoint or start a UI. Each command is a thin function of its parsed flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlsplit

from penguins_platform import defaults
from penguins_platform.ml.schema import SAMPLE_PENGUIN
from penguins_platform.project import PROJECT_ROOT, default_tracking_uri, prepare_dagster_home
from penguins_platform.runner import run_job

if TYPE_CHECKING:
    from penguins_platform.defs.resources import LocalEndpoint, SageMakerEndpoint
    from penguins_platform.deploy.target import DeploymentTarget


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="penguins_platform", description=__doc__.split("\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="materialize the training lineage",
        description="Materialize the training lineage. Every flag defaults to the launchpad's.",
    )
    knob = train.add_argument
    knob("--data", help=f"CSV file, folder or s3:// prefix (default {defaults.DATA_LOCATION})")
    knob("--threshold", type=float, help=f"minimum mean CV accuracy ({defaults.THRESHOLD})")
    knob("--epochs", type=int, help=f"passes over the data per fit ({defaults.EPOCHS})")
    knob("--batch-size", type=int, help=f"rows per SGD step ({defaults.BATCH_SIZE})")
    knob("--learning-rate", type=float, help=f"SGD learning rate ({defaults.LEARNING_RATE})")
    knob("--folds", type=int, help=f"cross-validation folds ({defaults.FOLDS})")
    knob("--seed", type=int, help=f"seed of shuffle, weights, folds ({defaults.SEED})")
    knob(
        "--steps-per-execution",
        type=at_least_one,
        help="SGD steps per compiled call (default: a whole epoch; 1: Keras's per-step fit)",
    )
    knob(
        "--max-data-bytes",
        type=at_least_one,
        help=f"largest data location to load, in bytes ({defaults.MAX_DATA_BYTES:,})",
    )
    knob(
        "--promotion-metric",
        choices=("accuracy_score", "f1_score", "precision_score", "recall_score"),
        help=f"metric the challenger must win on ({defaults.PROMOTION_METRIC})",
    )
    knob(
        "--promotion-margin",
        type=float,
        help=f"how much better than the champion it must be ({defaults.PROMOTION_MARGIN})",
    )
    knob(
        "--with-production-labels",
        action="store_true",
        default=None,
        help="add the labeled rows the endpoints captured to the training data",
    )
    promote = commands.add_parser(
        "promote",
        help="make a version the champion by hand (a rollback when it is older)",
        description="Promote a registered version to champion through the promotion job, "
        "bypassing the challenger gate, and record who asked and why. The champion sensor "
        "then deploys it; `serve` serves it now.",
    )
    which = promote.add_mutually_exclusive_group(required=True)
    which.add_argument("version", nargs="?", help="the registered version to promote")
    which.add_argument(
        "--previous",
        action="store_true",
        help="promote the champion that the current one replaced (a rollback)",
    )
    promote.add_argument("--reason", required=True, help="why; kept on the version and the run")
    promote.add_argument(
        "--requested-by", default=None, help="who asks (default: this user's login name)"
    )
    monitor = commands.add_parser(
        "monitor",
        help="evaluate what the endpoint captured",
        description="Materialize the monitoring assets: the newest captured rows, their labels, "
        "and an Evidently report on drift and accuracy against the training data.",
    )
    monitor.add_argument(
        "--rows", type=at_least_one, help=f"newest rows to read ({defaults.MONITORING_ROWS})"
    )
    serve = commands.add_parser("serve", help="serve on the endpoint")
    for command in (train, serve, monitor, promote):
        command.add_argument(
            "--max-runtime",
            type=float,
            help="stop the run after this many seconds (default: the job's dagster/max_runtime)",
        )
        command.add_argument(
            "--verbose", action="store_true", help="print Dagster's whole log, as the UI shows it"
        )
    serve.description = "Serve the champion, or a chosen version, on the local endpoint."
    serve.add_argument("--version", default=None, help="serve this version, not the champion")
    commands.add_parser("stop", help="stop the local endpoint")
    sample = commands.add_parser("sample", help="send the reference's sample request")
    sample.add_argument("--url", default=None, help="endpoint URL; default: the local endpoint")
    traffic = commands.add_parser(
        "traffic",
        help="send sampled penguins to an endpoint, for monitoring",
        description="Send penguins drawn from the shipped data to an endpoint, in batches, as "
        "production traffic. --drift adds noise to body_mass_g, so monitoring sees drift.",
    )
    flag = traffic.add_argument
    flag(
        "--requests",
        type=at_least_one,
        default=defaults.TRAFFIC_REQUESTS,
        help=f"records to send ({defaults.TRAFFIC_REQUESTS})",
    )
    flag(
        "--batch-size",
        type=at_least_one,
        default=defaults.TRAFFIC_BATCH_SIZE,
        help=f"records per request ({defaults.TRAFFIC_BATCH_SIZE})",
    )
    flag("--drift", action="store_true", help="add noise to body_mass_g (up to 3 std)")
    flag("--seed", type=int, help="seed of the draw (default: a new one, printed)")
    flag("--target", choices=("local", "sagemaker"), default="local", help="(default: local)")
    flag("--url", help="local endpoint, http://host:port (default: the configured one)")
    dev = commands.add_parser("dev", help="open the Dagster UI on the local instance")
    dev.add_argument("--port", type=int, default=3000)
    ui = commands.add_parser("mlflow-ui", help="open the MLflow UI on the local store")
    ui.add_argument("--port", type=int, default=5000)
    commands.add_parser(
        "settings",
        help="list every environment variable the platform reads",
        description="Every environment variable the platform reads, by concern, with its "
        "default and meaning: the README's tables.",
    )
    check = commands.add_parser(
        "check-instance",
        help="check $DAGSTER_HOME/dagster.yaml before a service starts",
        description="Check the instance config, its variables and its database; one line out.",
    )
    check.add_argument("--home", type=Path, default=None, help="default: $DAGSTER_HOME")
    rehearse = commands.add_parser(
        "rehearse",
        help="start the ECS deployment on this machine from infra/ and run one cycle",
        description="Build infra/cloudformation's stacks against moto and a real PostgreSQL, "
        "start the webserver, daemon and code location from their task definitions, and run "
        "one cycle: training through the webserver's API, the sensor's SageMaker deployment, "
        "traffic and monitoring, with every run and step as an ECS task.",
    )
    rehearse.add_argument(
        "--folder", type=Path, default=PROJECT_ROOT / ".rehearsal",
        help="where the tasks' files and logs go (emptied first)",
    )  # fmt: skip
    rehearse.add_argument("--epochs", type=at_least_one, default=None)
    rehearse.add_argument("--folds", type=at_least_one, default=None)
    rehearse.add_argument("--threshold", type=float, default=None)
    rehearse.add_argument(
        "--keep-running", action="store_true",
        help="after the cycle, keep everything up (the UI too) until Ctrl-C",
    )  # fmt: skip
    return root


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


class RunOptions(TypedDict):
    verbose: bool
    max_runtime: float | None


def run_options(args: argparse.Namespace) -> RunOptions:
    """The flags every command that runs a job shares."""
    return {"verbose": args.verbose, "max_runtime": args.max_runtime}


def train(args: argparse.Namespace) -> int:
    prepare_dagster_home()
    from penguins_platform.defs.jobs import training_run_config

    run_config = training_run_config(
        data=args.data,
        threshold=args.threshold,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        folds=args.folds,
        seed=args.seed,
        steps_per_execution=args.steps_per_execution,
        max_data_bytes=args.max_data_bytes,
        with_production_labels=args.with_production_labels,
        promotion_metric=args.promotion_metric,
        promotion_margin=args.promotion_margin,
    )
    result = run_job(
        "training_job", run_config, "Training", settled=lost_the_gate, **run_options(args)
    )
    if result is None:
        return 1
    version = result.output_for_node("registered_model_version")
    scores = result.output_for_node("cross_validation_scores")
    print(
        f"Registered penguins version {version}: cross-validated accuracy "
        f"{scores.accuracy_mean:.4f} ± {scores.accuracy_std:.4f} (run {result.run_id})"
    )
    gate = gate_evaluation(result)
    if gate is not None and gate.passed:
        print(f"Champion: version {version} ({gate.description})")
    elif gate is not None:
        print(
            f"Not promoted, so not deployed: {gate.description}. It stays registered as the "
            f"challenger; `make promote VERSION={version} REASON='...'` promotes it anyway."
        )
    return 0


def gate_evaluation(result: Any) -> Any:
    """The run's `beats_champion` evaluation, or None when it did not run."""
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == "beats_champion"]
    return found[0] if found else None


def lost_the_gate(result: Any) -> bool:
    """A training run that failed only because its challenger lost: registered, not promoted."""
    gate = gate_evaluation(result)
    return gate is not None and not gate.passed


def promote(args: argparse.Namespace) -> int:
    """Run the promotion job: the champion alias moves to the version, recorded as by hand."""
    import getpass

    prepare_dagster_home()
    import dagster as dg

    from penguins_platform.defs import event_log
    from penguins_platform.defs.registry import REASON_TAG, REQUESTED_BY_TAG
    from penguins_platform.tracking.promotion import PromotionError, previous_champion

    version = args.version
    if args.previous:
        tracking = configured("mlflow")
        try:
            version = previous_champion(tracking.client(), tracking.registered_model_name)
        except PromotionError as error:
            print(f"Cannot roll back: {error}", file=sys.stderr)
            return 1
    requested_by = args.requested_by or getpass.getuser()
    config = {"version": version, "reason": args.reason, "requested_by": requested_by}
    result = run_job(
        "promotion_job",
        dg.RunConfig(ops={"champion": {"config": config}}),
        "Promotion",
        tags={REQUESTED_BY_TAG: requested_by[:200], REASON_TAG: args.reason[:200]},
        **run_options(args),
    )
    if result is None:
        return 1
    promoted = event_log.materialized_metadata(result, dg.AssetKey("champion")) or {}
    if promoted.get("champion_changed"):
        print(
            f"Champion: version {version} ({promoted['promotion']}; was "
            f"{promoted['previous_champion']}). The champion sensor deploys it; "
            "`make serve` serves it now."
        )
    else:
        print(f"Version {version} is already the champion; nothing changed.")
    return 0


def serve(args: argparse.Namespace) -> int:
    """Materialize `local_endpoint` on the local instance, so the deployment shows in the UI."""
    prepare_dagster_home()
    import dagster as dg

    from penguins_platform.defs import event_log
    from penguins_platform.defs.deployment import DeploymentConfig
    from penguins_platform.defs.resources import target_status

    endpoint = local_endpoint()
    status = target_status(endpoint)
    if not status.enabled:  # the run would skip it and succeed, having served nothing
        print(f"The local endpoint is off here: {status.reason}.", file=sys.stderr)
        return 1
    config = DeploymentConfig(**({"version": args.version} if args.version else {}))
    run_config = dg.RunConfig(ops={"local_endpoint": config})
    result = run_job("local_endpoint_job", run_config, "Deployment", **run_options(args))
    if result is None:
        return 1
    deployed = event_log.materialized_metadata(result, dg.AssetKey("local_endpoint"))
    assert deployed is not None, "a run that succeeded deployed to the enabled target"
    print(
        f"Serving penguins version {deployed['serving_version']} at {endpoint.url} "
        f"(log {endpoint.paths.log_file}); `make sample` to try it, `make stop` to stop it."
    )
    return 0


def monitor(args: argparse.Namespace) -> int:
    """Materialize the monitoring lineage on the local instance and print what it found."""
    prepare_dagster_home()
    import dagster as dg

    from penguins_platform.defs import event_log
    from penguins_platform.tracking.promotion import champion

    tracking = configured("mlflow")
    if champion(tracking.client(), tracking.registered_model_name) is None:
        print(
            "Monitoring judges what a champion answered against the data that trained it, and "
            f"{tracking.registered_model_name!r} has no champion yet: run `make train` (and "
            "`make serve`, `make traffic`) first.",
            file=sys.stderr,
        )
        return 1
    config = {"rows": args.rows} if args.rows else {}
    run_config = dg.RunConfig(ops={"production_data": {"config": config}})
    result = run_job("monitoring_job", run_config, "Monitoring", **run_options(args))
    if result is None:
        return 1
    report = event_log.materialized_metadata(result, dg.AssetKey("monitoring_report")) or {}
    print(f"Monitoring run {result.run_id}: {report.get('status', 'no report')}")
    for evaluation in result.get_asset_check_evaluations():
        outcome = "passed" if evaluation.passed else "FAILED"
        print(f"  {evaluation.check_name}: {outcome}: {evaluation.description}")
    if "report_file" in report:
        print(f"Report: {report['report_file']}")
    return 0


def configured(key: str) -> Any:
    """The resource `key` as the definitions configure it, with its EnvVars resolved."""
    from penguins_platform.definitions import defs

    return (defs.resources or {})[key].process_config_and_initialize()


def local_endpoint() -> LocalEndpoint:
    return configured("local")


def stop(args: argparse.Namespace) -> int:
    from penguins_platform.serving import service

    endpoint = local_endpoint()
    stopped = service.stop(endpoint.paths)
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


TRAFFIC_PROGRESS_ROWS = 50  # `traffic` prints a line each time this many more rows are sent


def traffic(args: argparse.Namespace) -> int:
    """Send sampled penguins to an endpoint, as `make traffic` does, so monitoring has rows."""
    import secrets

    from penguins_platform.traffic import (
        DRIFT_FEATURE,
        TrafficError,
        sample_records,
        send_traffic,
        shipped_penguins,
    )

    target = traffic_target(args)
    if target is None:
        return 1
    # A new seed each time by default, as real traffic would differ; printed, so a run can
    # be repeated with --seed.
    seed = secrets.randbelow(1_000_000) if args.seed is None else args.seed
    records = sample_records(shipped_penguins(), args.requests, drift=args.drift, seed=seed)
    shown = 0

    def progress(sent: int, total: int) -> None:
        nonlocal shown
        if sent < total and sent // TRAFFIC_PROGRESS_ROWS > shown // TRAFFIC_PROGRESS_ROWS:
            print(f"  {sent} of {total} rows sent", flush=True)
            shown = sent

    try:
        result = send_traffic(target.invoke, records, args.batch_size, progress)
        failure = None
    except TrafficError as error:
        result, failure = error.result, error
    drift = "on" if args.drift else "off"
    print(f"{result.summary(target.label)} (drift on {DRIFT_FEATURE}: {drift}, seed {seed})")
    if failure is not None:
        print(f"Gave up on the {target.label}: {failure}", file=sys.stderr)
    elif result.failed_requests:
        print(f"{result.failed_requests} request(s) failed; the first:", file=sys.stderr)
        for message in result.errors:
            print(f"  {message}", file=sys.stderr)
    return 1 if result.failed_requests else 0


def traffic_target(args: argparse.Namespace) -> DeploymentTarget | None:
    """The target that `traffic` sends to; None, after saying why, when it cannot be used."""
    if args.target == "sagemaker":
        return sagemaker_target(args)
    from penguins_platform.deploy.local import LocalTarget
    from penguins_platform.serving import service
    from penguins_platform.serving.settings import LocalEndpointSettings

    # The model name matters only to deploying; invoking sends to whatever serves.
    if args.url:  # the address alone: importing the definitions to learn it takes seconds
        try:
            host, port = endpoint_address(args.url)
        except ValueError as error:
            print(f"--url: {error}", file=sys.stderr)
            return None
        target = LocalTarget(LocalEndpointSettings(host=host, port=port), defaults.MODEL_NAME)
    else:
        target = local_endpoint().target(defaults.MODEL_NAME)
    if service.health(target.settings.url) is None:
        print(
            f"No endpoint answers at {target.settings.url}; start one with `make serve`.",
            file=sys.stderr,
        )
        return None
    return target


def endpoint_address(url: str) -> tuple[str, int]:
    """(host, port) of a local endpoint's URL; ValueError unless it is http://host[:port]."""
    address = urlsplit(url)
    try:
        port = address.port or 80
    except ValueError:  # a port that is not a number, or out of range
        port = None
    if (
        address.scheme != "http"
        or not address.hostname
        or port is None
        or address.path not in ("", "/")
    ):
        raise ValueError(f"expected http://host:port, got {url!r}")
    return address.hostname, port


def sagemaker_target(args: argparse.Namespace) -> DeploymentTarget | None:
    from penguins_platform.deploy.sagemaker import SageMakerSettings
    from penguins_platform.deploy.target import TargetConfigError
    from penguins_platform.settings import variable

    if args.url:
        name = variable(SageMakerSettings, "endpoint_name")
        print(f"--url is for the local endpoint; SageMaker's is {name}", file=sys.stderr)
        return None
    resource: SageMakerEndpoint = configured("sagemaker")
    if not resource.enabled:
        print(f"The SageMaker target is off. {resource.enable_hint}", file=sys.stderr)
        return None
    try:
        return resource.target(defaults.MODEL_NAME)
    except TargetConfigError as error:
        print(f"The SageMaker target cannot be used: {error}", file=sys.stderr)
        return None


def dev(args: argparse.Namespace) -> int:
    """`dagster dev` on the instance that `train` wrote to, so its runs show in the UI."""
    prepare_dagster_home()
    workspace = PROJECT_ROOT / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(workspace), "-p", str(args.port)]
    os.execv(command[0], command)


def mlflow_ui(args: argparse.Namespace) -> int:
    """The MLflow UI on the store `train` wrote to (or on $MLFLOW_TRACKING_URI's database)."""
    from penguins_platform.settings import variable
    from penguins_platform.tracking.store import MlflowStore

    store = os.environ.get(variable(MlflowStore, "tracking_uri")) or default_tracking_uri()
    # One process, not MLflow's job-execution workers: a local UI needs none of them.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow), "server", "--backend-store-uri", store,
        "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1",
    ]  # fmt: skip
    os.execv(command[0], command)


def settings(args: argparse.Namespace) -> int:
    """Print the tables of environment variables, one per settings class."""
    from penguins_platform.definitions import SETTINGS
    from penguins_platform.settings import markdown_table

    for model in SETTINGS:
        print(f"{model.__name__}: {(model.__doc__ or '').strip().splitlines()[0]}\n")
        print(markdown_table(model), end="\n\n")
    return 0


def check_instance(args: argparse.Namespace) -> int:
    """Exit 0 with a summary when the instance can start; 2 with the wrong setting otherwise."""
    from penguins_platform.instance_check import InstanceConfigError
    from penguins_platform.instance_check import check_instance as check

    home = args.home or (
        Path(os.environ["DAGSTER_HOME"]) if os.environ.get("DAGSTER_HOME") else None
    )
    if home is None:
        print("check-instance: DAGSTER_HOME is not set (or pass --home)", file=sys.stderr)
        return 2
    try:
        print(check(home))
    except InstanceConfigError as error:
        print(f"check-instance: {error}", file=sys.stderr)
        return 2
    return 0


def rehearse(args: argparse.Namespace) -> int:
    """Exit 0 when the rehearsed deployment did one whole cycle; 1 naming what failed."""
    import shutil
    import signal
    import time

    from penguins_platform.defs.jobs import training_run_config
    from penguins_platform.rehearsal.cycle import run_cycle
    from penguins_platform.rehearsal.ecs import RehearsalError
    from penguins_platform.rehearsal.template import TemplateError
    from penguins_platform.rehearsal.topology import Rehearsal

    def stop(signum: int, frame: object) -> None:
        # The tasks run in sessions of their own: leave through the context managers, which
        # stop every one of them, the database and moto. Once: a second signal (make passes
        # its own on to us) must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    shutil.rmtree(args.folder, ignore_errors=True)
    training = training_run_config(
        epochs=args.epochs, folds=args.folds, threshold=args.threshold
    ).to_config_dict()
    print("Starting the stacks of infra/cloudformation on this machine (moto, PostgreSQL) …")
    try:
        with Rehearsal(args.folder) as rehearsal:
            print(
                f"Webserver answering at {rehearsal.webserver_url} after "
                f"{rehearsal.startup_seconds:.1f} s (tasks' logs in {args.folder}/tasks)"
            )
            cycle = run_cycle(rehearsal, training)
            print(
                f"Rehearsal passed: one cycle, {cycle.step_tasks} step tasks. "
                f"Webserver up in {rehearsal.startup_seconds:.1f} s; then"
            )
            print("\n".join(cycle.lines()))
            if args.keep_running:
                print(f"Still running: the UI at {rehearsal.webserver_url}; Ctrl-C stops it.")
                while True:
                    time.sleep(3600)
    except KeyboardInterrupt:
        print("Rehearsal stopped; every task, the database and moto with it.")
        return 130
    except (RehearsalError, TemplateError) as error:
        print(f"Rehearsal failed: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run_command(argv)
    except Exception as error:
        from penguins_platform.runner import database_error

        reason = database_error(error)
        if reason is None:
            raise
        print(
            f"The Dagster instance's database stopped answering, so this run failed: {reason}\n"
            "Nothing after that point was recorded. Start the database and run again; "
            "`python -m penguins_platform check-instance` tells when it answers.",
            file=sys.stderr,
        )
        return 1


def run_command(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {
        "train": train,
        "serve": serve,
        "stop": stop,
        "sample": sample,
        "traffic": traffic,
        "monitor": monitor,
        "promote": promote,
        "dev": dev,
        "mlflow-ui": mlflow_ui,
        "settings": settings,
        "check-instance": check_instance,
        "rehearse": rehearse,
    }
    return commands[args.command](args)
