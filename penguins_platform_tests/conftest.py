"""Shared fixtures: a session-wide MLflow store, Dagster instances, and real servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pytest

# Before the definitions load: the suite runs as on a machine of its own (see the module).
import penguins_platform_tests.own_machine  # noqa: F401

# Before anything imports keras: the platform's backend, even for a bare `import keras`.
os.environ.setdefault("KERAS_BACKEND", "jax")

from penguins_platform import defaults
from penguins_platform.definitions import defs
from penguins_platform.defs.jobs import training_run_config
from penguins_platform.defs.resources import MlflowTracking, S3Storage
from penguins_platform.ml.model import TrainingParameters
from penguins_platform.project import INSTANCE_TEMPLATE
from penguins_platform_tests.servers import (
    free_port,
    start_process,
    stop_process_group,
    wait_for_http,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_FILE = REPO_ROOT / "data" / "penguins.csv"
VENV_BIN = Path(sys.executable).parent

if TYPE_CHECKING:
    import keras
    import pandas as pd
    from dagster_shared.error import SerializableErrorInfo

    from penguins_platform.ml.features import FittedTransformers

pytest_plugins = ["penguins_platform_tests.tiers"]


class _CurrentStderr:
    """A stream that writes to whatever `sys.stderr` is at the time, and that no one closes.

    absl (under JAX) binds its logging handler to `sys.stderr` as it is when absl is imported,
    which under pytest is a capture file. Dagster configures logging afresh for every run
    (`logging.config.dictConfig`), which closes every handler in the process, and absl's
    handler then closes its stream unless that stream is `sys.stderr` at that moment. In a
    test that uses `capsys` it is not, so pytest's own capture file got closed, and every
    later test of that worker failed with "I/O operation on closed file".
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def close(self) -> None:
        """Not the handler's to close."""


def _absl_logs_to_the_current_stderr() -> None:
    import absl.logging

    absl.logging.get_absl_handler().python_handler.setStream(_CurrentStderr())


_absl_logs_to_the_current_stderr()


LINEAGE_ASSETS = {
    "raw_penguins",
    "penguins",
    "feature_transformer",
    "cross_validation_scores",
    "trained_model",
    "registered_model_version",
    "champion",
}


# What MLflow writes into the working directory when code reaches it without a tracking or
# registry URI: a stray store that nothing reads (one was once committed).
STRAY_STORES = ("mlflow.db", "mlruns", "mlartifacts")


@pytest.fixture(autouse=True)
def no_store_in_the_working_directory():
    """Fail the test that makes MLflow write a store into the checkout."""
    before = {name for name in STRAY_STORES if (REPO_ROOT / name).exists()}
    yield
    appeared = {name for name in STRAY_STORES if (REPO_ROOT / name).exists()} - before
    assert not appeared, f"this test wrote {sorted(appeared)} into {REPO_ROOT}"


@pytest.fixture
def raw():
    """The shipped CSV as `raw_penguins` reads it: every column text."""
    from penguins_platform.ml.cleaning import read_penguins_csv

    return read_penguins_csv(DATA_FILE.read_bytes(), str(DATA_FILE))


@pytest.fixture
def cleaned(raw):
    """The shipped CSV as the `penguins` asset holds it."""
    from penguins_platform.ml.cleaning import clean_penguins

    return clean_penguins(raw, seed=defaults.SEED)


@dataclass(frozen=True)
class MlflowStore:
    tracking_uri: str
    artifact_location: str | None


BuiltOnce = Callable[[str, Callable[[Path], None]], Path]


@pytest.fixture(scope="session")
def built_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> BuiltOnce:
    """`built_once(name, build)`: a folder that `build` fills, built by the first test worker
    that asks for it and shared by every worker of the session (pytest-xdist runs each in a
    process of its own), so an expensive set-up is paid once a session, not once a worker.
    A build that failed half-way is started over by the next one that asks."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # the session's folder, which holds every worker's own
        root = root.parent
    shelf = root / "built-once"
    shelf.mkdir(exist_ok=True)

    def get(name: str, build: Callable[[Path], None]) -> Path:
        folder = shelf / name
        complete = folder / ".complete"
        with FileLock(f"{folder}.lock"):
            if not complete.exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                complete.touch()
        return folder

    return get


def migrated_store(folder: Path) -> None:
    """A new MLflow SQLite store in `folder`, migrated (a `built_once` build)."""
    from penguins_platform.tracking.store import create_sqlite_store

    create_sqlite_store(folder / "mlflow.db")


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory, built_once: BuiltOnce) -> MlflowStore:
    """A SQLite store of this worker's own for the whole session, copied from one migrated
    once for all workers: migrating a new store takes seconds."""
    root = tmp_path_factory.mktemp("mlflow")
    shutil.copy(built_once("mlflow-store", migrated_store) / "mlflow.db", root / "mlflow.db")
    return MlflowStore(f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri())


@pytest.fixture
def model_name() -> str:
    """A registered-model name of this test's own, so counts are not shared between tests."""
    return f"penguins-{uuid.uuid4().hex[:8]}"


def tracking_resource(store: MlflowStore, model_name: str) -> MlflowTracking:
    return MlflowTracking(
        tracking_uri=store.tracking_uri,
        experiment_name="penguins-tests",
        registered_model_name=model_name,
        artifact_location=store.artifact_location,
    )


@pytest.fixture
def mlflow_tracking(sqlite_store: MlflowStore, model_name: str) -> MlflowTracking:
    return tracking_resource(sqlite_store, model_name)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def model_versions(tracking_uri: str, name: str) -> list[str]:
    """The versions the registry holds for `name`, oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    found = client.search_model_versions(f"name = '{name}'")
    return sorted((str(v.version) for v in found), key=int)


def definitions_with(**resources) -> dg.Definitions:
    """The platform's definitions with some resources swapped for test ones."""
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources={**(defs.resources or {}), **resources},
    )


def run_deployment(registry, asset: str, resources: dict, **config) -> dg.ExecuteInProcessResult:
    """Materialize one deployment asset with `config`, against the `registry` fixture's store."""
    instance, tracking = registry
    defs = definitions_with(mlflow=tracking, **resources)
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        run_config={"ops": {asset: {"config": config}}},
        instance=instance,
        asset_selection=[dg.AssetKey(asset)],
        raise_on_error=False,
    )


def run_training(
    instance: dg.DagsterInstance,
    mlflow_tracking: MlflowTracking,
    s3: S3Storage | None = None,
    selection: list[str] | None = None,
    fold_workers: object | None = None,
    local: object | None = None,
    **config,
) -> dg.ExecuteInProcessResult:
    """Run the real `training_job` (or the `selection` of it) with test resources swapped in."""
    extra = {"fold_workers": fold_workers} if fold_workers is not None else {}
    if local is not None:  # whose captured rows `with_production_labels` reads
        extra["local"] = local
    test_defs = definitions_with(mlflow=mlflow_tracking, s3=s3 or S3Storage(), **extra)
    return test_defs.resolve_job_def("training_job").execute_in_process(
        run_config=training_run_config(**config),
        instance=instance,
        asset_selection=[dg.AssetKey(key) for key in selection] if selection else None,
        raise_on_error=False,
    )


# A training whose score no test reads: fewer epochs and folds than the default recipe, the
# same lineage, and a threshold that it passes.
QUICK_TRAINING: dict[str, Any] = {"epochs": 20, "folds": 2, "threshold": 0.5}
# Two epochs: registrable (a threshold of 0), and far worse than QUICK_TRAINING on the holdout,
# so the challenger gate's verdict between the two is never close.
WEAK_TRAINING: dict[str, Any] = {"epochs": 2, "folds": 2, "threshold": 0.0}


@pytest.fixture(scope="session")
def train_lineage() -> Callable[..., dg.ExecuteInProcessResult]:
    """`run_training`, for a test that trains the lineage to the end (the integration tier);
    a run that fails early can call `run_training` itself and stay in the fast tier."""
    return run_training


Command = Callable[..., subprocess.CompletedProcess]


def _environment(env: dict[str, str | None] | None) -> dict[str, str]:
    """The test process's environment with `env` over it; a None value unsets a variable."""
    merged: dict[str, str | None] = {**os.environ, **(env or {})}
    return {name: value for name, value in merged.items() if value is not None}


@pytest.fixture(scope="session")
def penguins_cli() -> Command:
    """`python -m penguins_platform ARGS` in a subprocess, as a user runs it."""

    def run(*args: str, env: dict[str, str | None] | None = None, timeout: float = 600):
        return subprocess.run(
            [sys.executable, "-m", "penguins_platform", *args], env=_environment(env),
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    return run


@pytest.fixture(scope="session")
def make() -> Command:
    """`make TARGET ARGS="..."` in the checkout, as the README tells a user to run it."""

    def run(
        target: str,
        *args: str,
        env: dict[str, str | None] | None = None,
        variables: dict[str, str] | None = None,
    ):
        command = ["make", "--no-print-directory", "-C", str(REPO_ROOT), target]
        command += [f"{name}={value}" for name, value in (variables or {}).items()]
        if args:
            command.append(f"ARGS={' '.join(args)}")
        return subprocess.run(
            command, env=_environment(env), capture_output=True, text=True, timeout=600
        )

    return run


def write_csv(directory: Path, text: str, name: str = "penguins.csv") -> Path:
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def penguins_csv_text() -> str:
    return DATA_FILE.read_text()


@pytest.fixture(scope="module")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory, built_once: BuiltOnce
) -> Iterator[MlflowStore]:
    """A real `mlflow server` process on 127.0.0.1, stopped with its whole process group.
    Its store starts migrated, so the server skips MLflow's migrations."""
    root = tmp_path_factory.mktemp("mlflow-server")
    shutil.copy(built_once("mlflow-store", migrated_store) / "mlflow.db", root / "server.db")
    port = free_port()
    log = root / "server.log"
    command = [
        str(VENV_BIN / "mlflow"), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = start_process(command, log, env=env, cwd=root)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", process, log, timeout=120)
        yield MlflowStore(f"http://127.0.0.1:{port}", None)
    finally:
        stop_process_group(process)


@dataclass(frozen=True)
class DagsterDev:
    """A running `dagster dev` (webserver and daemon) on an instance of its own."""

    url: str
    home: Path
    tracking_uri: str
    endpoint_url: str  # where its runs deploy the local endpoint
    endpoint_paths: object  # and that endpoint's service.EndpointPaths

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.url, query, variables)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """The data of a GraphQL query to the webserver at `url`; fails on any GraphQL error."""
    import json

    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        payload = json.load(reply)
    assert "errors" not in payload, payload
    return payload["data"]


def _cloud_variables() -> tuple[str, ...]:
    from penguins_platform.deploy.azure import AzureSettings
    from penguins_platform.deploy.sagemaker import SageMakerSettings
    from penguins_platform.settings import variables

    return (*variables(SageMakerSettings).values(), *variables(AzureSettings).values())


# What a developer's shell may hold that would send a test's runs to a real cloud.
CLOUD_VARIABLES = _cloud_variables()


DAGSTER_DEV_SENSOR_INTERVAL = 5


@pytest.fixture
def dagster_daemon() -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts `dagster-daemon run` on the workspace, as a shared deployment runs it; every
    daemon this test started is stopped (its process group) when the test ends."""
    started: list[subprocess.Popen] = []

    def start(
        home: Path, log: Path, tracking_uri: str, model_name: str, **environment: str
    ) -> subprocess.Popen:
        env = {
            **{k: v for k, v in os.environ.items() if k not in CLOUD_VARIABLES},
            "DAGSTER_HOME": str(home),
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PENGUINS_MODEL_NAME": model_name,
            "PENGUINS_SENSOR_INTERVAL": "1",
            **environment,
        }
        command = [str(VENV_BIN / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")]
        started.append(start_process(command, log, env=env, cwd=REPO_ROOT))
        return started[-1]

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                stop_process_group(process)


@pytest.fixture(scope="session")
def dagster_dev(tmp_path_factory) -> Iterator[DagsterDev]:
    """One `dagster dev` for the session, as `make dev` runs it, on its own instance, MLflow
    store and endpoint port; stopped with its process group, and its endpoint with it."""
    import shutil

    from penguins_platform.serving import service

    root = tmp_path_factory.mktemp("dagster-dev")
    home = root / "home"
    home.mkdir()
    shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
    port = free_port()
    log = root / "dagster-dev.log"
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    endpoint_paths = service.EndpointPaths(root / "serving")
    endpoint_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in CLOUD_VARIABLES},
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PENGUINS_ENDPOINT_PORT": str(endpoint_port),
        "PENGUINS_ENDPOINT_STATE_DIR": str(endpoint_paths.state_dir),
        "PENGUINS_REPORT_DIR": str(root / "reports"),
        # The sensor looks at the registry every 5 s, not 30: the tests wait for its ticks.
        "PENGUINS_SENSOR_INTERVAL": str(DAGSTER_DEV_SENSOR_INTERVAL),
    }
    command = [
        str(VENV_BIN / "dagster"), "dev",
        "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    process = start_process(command, log, env=env, cwd=REPO_ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/server_info", process, log, timeout=180)
        endpoint_url = f"http://127.0.0.1:{endpoint_port}"
        yield DagsterDev(url, home, tracking_uri, endpoint_url, endpoint_paths)
    finally:
        stop_process_group(process)
        service.stop(endpoint_paths)
    assert process.poll() is not None, "dagster dev must be stopped"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so boto3 never looks for (or finds) real ones."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto_server(aws_credentials: None) -> Iterator[str]:
    """moto for one test, with fake credentials in the environment."""
    from penguins_platform.rehearsal.aws import moto_on_loopback

    with moto_on_loopback() as url:
        yield url


@pytest.fixture(scope="module")
def module_moto_server() -> Iterator[str]:
    """moto for a whole module, whose fixture sets the credentials it needs itself."""
    from penguins_platform.rehearsal.aws import moto_on_loopback

    with moto_on_loopback() as url:
        yield url


@dataclass(frozen=True)
class TrainedModel:
    """A model fitted on every cleaned penguin, without Dagster or MLflow, for serving tests."""

    transformers: FittedTransformers
    keras_model: keras.Model
    penguins: pd.DataFrame


def fit_model(seed: int = defaults.SEED, epochs: int = defaults.EPOCHS) -> TrainedModel:
    from penguins_platform.ml.cleaning import clean_penguins, read_penguins_csv
    from penguins_platform.ml.features import FittedTransformers
    from penguins_platform.ml.model import train_model

    raw = read_penguins_csv(DATA_FILE.read_bytes(), str(DATA_FILE))
    penguins = clean_penguins(raw, seed=defaults.SEED)
    transformers = FittedTransformers.fit(penguins)
    model, _ = train_model(
        transformers.transform_features(penguins),
        transformers.encode_target(penguins),
        TrainingParameters(epochs=epochs, seed=seed),
    )
    return TrainedModel(transformers, model, penguins)


@pytest.fixture(scope="session")
def trained_model() -> TrainedModel:
    return fit_model()


def export_inference_model(trained: TrainedModel, directory: Path) -> Path:
    from penguins_platform.ml.inference import InferenceModel

    InferenceModel.from_fitted(trained.transformers, trained.keras_model).save(directory)
    return directory


@pytest.fixture(scope="session")
def model_dir(trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served form of `trained_model`: what the registered pyfunc ships as `inference/`."""
    return export_inference_model(trained_model, tmp_path_factory.mktemp("model-v1"))


REGISTRY_MODEL = "penguins-deploy"


def _build_registry(folder: Path, template: Path, trained: TrainedModel) -> None:
    """A Dagster instance and an MLflow store holding v1 and v2 (the champion) of the
    registry's model, both trained by the lineage, and v3, whose network answers NaN."""
    import mlflow
    import numpy as np

    from penguins_platform.ml import packaging, schema

    shutil.copy(template / "mlflow.db", folder / "mlflow.db")
    store = MlflowStore(f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri())
    tracking = tracking_resource(store, REGISTRY_MODEL)
    (folder / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(folder / "instance")) as instance:
        assert run_training(instance, tracking, **QUICK_TRAINING).success
        assert run_training(instance, tracking).success
    broken = trained.keras_model.__class__.from_config(trained.keras_model.get_config())
    broken.set_weights([np.full_like(w, np.nan) for w in trained.keras_model.get_weights()])
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    run = tracking.client().create_run(tracking.experiment_id()).info.run_id
    example = trained.penguins[list(schema.FEATURES)].head(2)
    packaging.log_pyfunc_model(run, broken, trained.transformers, example, REGISTRY_MODEL)


@pytest.fixture(scope="session")
def registry_template(built_once: BuiltOnce, trained_model: TrainedModel) -> Path:
    """The folder of the registry below, built once for all workers."""
    template = built_once("mlflow-store", migrated_store)
    return built_once("registry", lambda folder: _build_registry(folder, template, trained_model))


@contextlib.contextmanager
def copied_registry(built: Path, mine: Path) -> Iterator[tuple[dg.DagsterInstance, MlflowTracking]]:
    """A copy of the instance and of the store's database (the artifacts they point at are
    shared, and only added to)."""
    shutil.copytree(built / "instance", mine / "instance")
    shutil.copy(built / "mlflow.db", mine / "mlflow.db")
    store = MlflowStore(f"sqlite:///{mine / 'mlflow.db'}", (built / "artifacts").as_uri())
    with dg.instance_for_test(temp_dir=str(mine / "instance")) as instance:
        yield instance, tracking_resource(store, REGISTRY_MODEL)


@pytest.fixture(scope="session")
def registry(registry_template: Path, tmp_path_factory):
    """An instance and a registry holding v1, v2 (the champion) and a broken v3, for each
    worker: tests read it, or add to it what no other test minds."""
    with copied_registry(registry_template, tmp_path_factory.mktemp("registry")) as copy:
        yield copy


@pytest.fixture
def fresh_registry(registry_template: Path, tmp_path: Path):
    """The same registry, copied for one test that changes what others read (the champion,
    the instance's latest materializations)."""
    with copied_registry(registry_template, tmp_path) as copy:
        yield copy


def check_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Check name to passed, for every check a run evaluated."""
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def check_descriptions(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.check_name: e.description or "" for e in result.get_asset_check_evaluations()}


def step_error(result: dg.ExecuteInProcessResult, step: str) -> SerializableErrorInfo:
    """The error that failed `step`; fails the test when the step did not fail."""
    failure = result.failure_data_for_node(step)
    assert failure is not None and failure.error is not None, f"step {step} did not fail"
    return failure.error


def run_log(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    """Every message the run logged, as the run's page in the UI shows them."""
    return "\n".join(entry.message for entry in instance.all_logs(result.run_id))


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, Any]:
    """The metadata values of the latest materialization of `asset` on `instance`."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    materialization = event.asset_materialization if event is not None else None
    assert materialization is not None, f"{asset} was never materialized"
    return {key: value.value for key, value in materialization.metadata.items()}


def materialized_assets(result: dg.ExecuteInProcessResult) -> set[str]:
    """The names of the assets the run materialized."""
    return {
        event.step_materialization_data.materialization.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
    }


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict:
    """The metadata values of the run's one materialization."""
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
