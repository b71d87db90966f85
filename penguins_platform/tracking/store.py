"""One MLflow store: a parent run per Dagster run, nested runs, metrics, and the registry.

Plain code, configured by the fields below. The Dagster resource `MlflowTracking` mixes these
fields in, so each setting is declared once, with its default and its description.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pydantic import Field, PrivateAttr

from penguins_platform import defaults
from penguins_platform.project import default_tracking_uri
from penguins_platform.settings import Settings, setting, variable
from penguins_platform.tracking import credentials
from penguins_platform.tracking.contract import DAGSTER_RUN_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient


class MlflowUnreachableError(ConnectionError):
    """The tracking store cannot be used. Raised before any step does work."""


class MlflowStore(Settings):
    """Where runs and models go, and how to reach it."""

    tracking_uri: str | None = setting(
        "MLFLOW_TRACKING_URI",
        None,
        "MLflow tracking URI: sqlite:///path/mlflow.db or http(s)://host:port. Unset: the "
        "local SQLite store in .mlflow/.",
    )
    experiment_name: str = setting(
        "MLFLOW_EXPERIMENT_NAME",
        defaults.EXPERIMENT_NAME,
        "MLflow experiment of the training runs.",
    )
    registered_model_name: str = setting(
        "PENGUINS_MODEL_NAME",
        defaults.MODEL_NAME,
        "Registered model that training adds versions to, and every target labels what it "
        "deploys with.",
    )
    artifact_location: str | None = setting(
        "MLFLOW_ARTIFACT_LOCATION",
        None,
        "Artifact root of a new experiment (`s3://...` works too). Unset: beside the database "
        "for a sqlite:// store, the server's own choice for an http(s):// one.",
    )
    ui_url: str | None = setting(
        "MLFLOW_UI_URL",
        None,
        "Base URL of the MLflow UI for links in metadata. Unset: the server itself for an "
        f"http(s) store, {defaults.MLFLOW_UI_URL} (`make mlflow-ui`) for a SQLite one.",
    )
    connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long the start-of-run reachability probe may wait."
    )

    _client: MlflowClient | None = PrivateAttr(default=None)

    @property
    def uri(self) -> str:
        """The tracking URI as configured, credentials included: never show it."""
        return self.tracking_uri or default_tracking_uri()

    @property
    def display_uri(self) -> str:
        """The tracking URI with any credentials masked, for messages and metadata."""
        return credentials.mask(self.uri)

    def ensure_reachable(self) -> None:
        """Fail fast, with the URI and what to do, when the tracking store cannot be used."""
        scheme = urlparse(self.uri).scheme
        if scheme in ("http", "https"):
            self._probe_server()
        elif scheme == "sqlite":
            database = Path(self.uri.removeprefix("sqlite:///"))
            try:
                database.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise MlflowUnreachableError(
                    f"cannot create the MLflow store directory {database.parent}: {error}"
                ) from error
            create_sqlite_store(database)
        elif scheme in ("", "file"):
            raise MlflowUnreachableError(
                f"MLflow tracking URI {self.display_uri!r} is a plain file store, which MLflow 3 "
                "no longer accepts; use sqlite:///path/to/mlflow.db instead"
            )

    def _probe_server(self) -> None:
        """GET /health, then one small authenticated API call, with the credentials as a
        header: urllib would take `user:pw@` for part of the host name and report a running
        server unreachable, and MLflow's /health answers whatever the credentials."""
        import urllib.error
        import urllib.request

        target = credentials.split(self.uri)
        header = target.basic_auth_header or _environment_auth_header()
        base = target.uri.rstrip("/")
        for path in ("/health", "/api/2.0/mlflow/experiments/search?max_results=1"):
            request = urllib.request.Request(base + path)
            if header:
                request.add_header("Authorization", header)
            try:
                with urllib.request.urlopen(request, timeout=self.connect_timeout_seconds) as reply:
                    reply.read()
            except urllib.error.HTTPError as error:
                if error.code in (401, 403):
                    raise MlflowUnreachableError(
                        f"MLflow tracking server {self.display_uri} refused the credentials "
                        f"(HTTP {error.code}); set MLFLOW_TRACKING_USERNAME and "
                        "MLFLOW_TRACKING_PASSWORD to an account of that server"
                    ) from None
                raise MlflowUnreachableError(
                    f"MLflow tracking server {self.display_uri} answered {path.split('?')[0]} "
                    f"with HTTP {error.code}; is that URI an MLflow server?"
                ) from None
            except (urllib.error.URLError, OSError) as error:
                reason = credentials.scrub(str(getattr(error, "reason", error)), self.uri)
                raise MlflowUnreachableError(
                    f"MLflow tracking server {self.display_uri} is unreachable ({reason}). "
                    f"Start it, or unset {variable(MlflowStore, 'tracking_uri')} to use the "
                    "local SQLite store."
                ) from None

    def client(self) -> MlflowClient:
        """An `MlflowClient` for this store, with the fluent API pointed at it too."""
        if self._client is None:
            # The model's environment is its pinned requirements, not this platform's lock
            # file; and progress bars only garble Dagster's captured logs.
            os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            import mlflow
            from mlflow.tracking import MlflowClient

            target = credentials.split(self.uri)
            if target.username is not None or target.password is not None:
                # MLflow sends these itself; a URI that holds them would be printed by MLflow
                # ("View run at …") and quoted in its errors.
                os.environ["MLFLOW_TRACKING_USERNAME"] = target.username or ""
                os.environ["MLFLOW_TRACKING_PASSWORD"] = target.password or ""
            mlflow.set_tracking_uri(target.uri)
            mlflow.set_registry_uri(target.uri)
            self._client = MlflowClient(target.uri, registry_uri=target.uri)
        return self._client

    def experiment_id(self) -> str:
        client = self.client()
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        return client.create_experiment(
            self.experiment_name, artifact_location=self._artifact_location()
        )

    def _artifact_location(self) -> str | None:
        """MLflow's own default for a database store is `./mlruns` under whatever the cwd is."""
        if self.artifact_location or not self.uri.startswith("sqlite:///"):
            return self.artifact_location
        database = Path(self.uri.removeprefix("sqlite:///"))
        return (database.parent / "artifacts").resolve().as_uri()

    def parent_run_id(self, dagster_run_id: str, job_name: str) -> str:
        """The MLflow run of a Dagster run, found by its tag, or created on first use, so every
        step of the run (in any process) logs to the same MLflow run.

        Steps that run at once in separate processes may both find none and both create one.
        Each creator then looks again and keeps the oldest, deleting its own if it lost. That
        settles every race but one where the clocks invert the two creations within the same
        milliseconds, so the training job also starts its parent in its first MLflow step
        (`split_folds`), seconds before the final model's step first logs to it.
        """
        client = self.client()
        parents = self._parent_runs(dagster_run_id)
        if parents:
            return parents[0].info.run_id
        created = client.create_run(
            self.experiment_id(),
            run_name=f"dagster-{dagster_run_id[:8]}",
            tags={DAGSTER_RUN_TAG: dagster_run_id, "dagster_job": job_name},
        ).info.run_id
        oldest = self._parent_runs(dagster_run_id)[0].info.run_id
        if oldest != created:
            client.delete_run(created)
        return oldest

    def _parent_runs(self, dagster_run_id: str) -> list[Run]:
        """The top-level MLflow runs tagged with this Dagster run, oldest first."""
        found = self.client().search_runs(
            [self.experiment_id()],
            filter_string=f"tags.{DAGSTER_RUN_TAG} = '{dagster_run_id}'",
            max_results=50,
        )
        parents = [run for run in found if "mlflow.parentRunId" not in run.data.tags]
        return sorted(parents, key=lambda run: (run.info.start_time, run.info.run_id))

    @contextlib.contextmanager
    def running(self, run_id: str) -> Iterator[str]:
        """Mark `run_id` RUNNING while a step uses it, then FINISHED, or FAILED if it raised,
        so the MLflow UI shows the state of the last step that touched it."""
        client = self.client()
        client.update_run(run_id, status="RUNNING")
        try:
            yield run_id
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")

    def nested_run(self, parent_run_id: str, name: str) -> str:
        """A child run under `parent_run_id`, shown nested in the MLflow UI."""
        run = self.client().create_run(
            self.experiment_id(),
            run_name=name,
            tags={"mlflow.parentRunId": parent_run_id},
        )
        return run.info.run_id

    def log_params(self, run_id: str, values: Mapping[str, object]) -> None:
        from mlflow.entities import Param

        self.client().log_batch(run_id, params=[Param(k, str(v)) for k, v in values.items()])

    def log_metrics(self, run_id: str, values: Mapping[str, float]) -> None:
        self.log_metric_history(run_id, {key: [value] for key, value in values.items()})

    def log_metric_history(self, run_id: str, series: Mapping[str, Sequence[float]]) -> None:
        """One batch call for whole curves: each value's position is its step."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for key, values in series.items()
            for step, value in enumerate(values)
        ]
        for start in range(0, len(metrics), 1000):  # MLflow's per-batch limit
            self.client().log_batch(run_id, metrics=metrics[start : start + 1000])

    def resolve_version(self, alias: str, version: str | None = None) -> str:
        """The registered version to deploy: `version` if given, else the one `alias` names."""
        from mlflow.exceptions import MlflowException

        name = self.registered_model_name
        try:
            if version:
                return str(self.client().get_model_version(name, version).version)
            return str(self.client().get_model_version_by_alias(name, alias).version)
        except MlflowException as error:
            wanted = f"version {version}" if version else f"alias {alias!r}"
            raise LookupError(
                f"model {name!r} has no {wanted} in {self.display_uri}; run `make train` "
                f"first, or pick an existing version ({error.message})"
            ) from error

    def download_model(self, version: str, destination: Path) -> Path:
        """The files of a registered version, in `destination/<version>`."""
        import mlflow.artifacts

        # MLflow resolves models:/ through the process-wide registry URI, not the argument
        # below; unset, that is sqlite:///mlflow.db in whatever the working directory is.
        self.client()
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{self.registered_model_name}/{version}",
                dst_path=str(destination / str(version)),
                tracking_uri=credentials.split(self.uri).uri,
            )
        )

    def _ui_base(self) -> str:
        if self.ui_url:
            return credentials.split(self.ui_url).uri.rstrip("/")
        if urlparse(self.uri).scheme in ("http", "https"):
            return credentials.split(self.uri).uri.rstrip("/")
        return defaults.MLFLOW_UI_URL

    def run_url(self, run_id: str) -> str:
        return f"{self._ui_base()}/#/experiments/{self.experiment_id()}/runs/{run_id}"

    def model_version_url(self, version: str) -> str:
        return f"{self._ui_base()}/#/models/{self.registered_model_name}/versions/{version}"


def create_sqlite_store(database: Path) -> None:
    """Create a new SQLite store whole, or not at all.

    MLflow builds a new store in about forty migrations, each committed on its own. An
    interrupt between two of them (Ctrl-C in a first `make train`, or its `--max-runtime`)
    would leave a store that every later open fails on ("table span_metrics already exists").
    So a new store is migrated under a temporary name and linked into place once complete;
    a store that another process linked first wins, and ours is dropped.
    """
    if database.exists():
        return
    import secrets

    from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine_with_retry

    partial = database.with_name(f".{database.name}.{secrets.token_hex(4)}.partial")
    try:
        # An engine of our own, not a store's: MLflow's stores cache their engines by URI.
        engine = create_sqlalchemy_engine_with_retry(f"sqlite:///{partial}")
        try:
            _initialize_tables(engine)
        finally:
            engine.dispose()
        with contextlib.suppress(FileExistsError):
            os.link(partial, database)
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)


def _environment_auth_header() -> str | None:
    """Basic auth from the variables MLflow itself reads, for the probe to send likewise."""
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not username and not password:
        return None
    return credentials.SplitUri("", username, password).basic_auth_header
