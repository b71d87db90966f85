"""MLflow tracking and registry access for the training lineage."""

from __future__ import annotations

import contextlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from pydantic import Field, PrivateAttr

# MLflow run tag that ties one MLflow parent run to one Dagster run.
DAGSTER_RUN_TAG = "dagster_run_id"


class MlflowUnreachableError(ConnectionError):
    """The tracking store cannot be reached. Raised before any step does work."""


class MlflowTracking(dg.ConfigurableResource):
    """One MLflow parent run per Dagster run, plus the model registry.

    Why not dagster-mlflow: its 0.29 `mlflow_tracking` is an op-era `@resource` that sets
    `os.environ` for the whole process and ends the MLflow run when each step's resource
    is torn down, so a multi-step asset job scatters its steps over several runs. This
    resource finds or creates the parent run by a tag holding the Dagster run id, so every
    step of a run, in any process, logs to the same MLflow run.

    It checks that the store is reachable when a run starts, so an unreachable server fails
    the run in seconds instead of after training.
    """

    tracking_uri: str = Field(
        description="MLflow tracking URI: sqlite:///path/mlflow.db or http://host:port.",
    )
    experiment_name: str = Field(default="penguins", description="MLflow experiment.")
    registered_model_name: str = Field(default="penguins", description="Registry model name.")
    artifact_location: str | None = Field(
        default=None,
        description=(
            "Artifact root of a new experiment. Unset: beside the database for a sqlite:// "
            "store, the server's own choice for an http(s):// one."
        ),
    )
    ui_url: str | None = Field(
        default=None,
        description="Base URL of the MLflow UI for links in metadata; defaults to an http URI.",
    )
    connect_timeout_seconds: float = Field(
        default=5.0, description="How long the start-of-run reachability probe may wait."
    )

    _client: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run fails fast here. A sensor tick has no run: it probes itself and skips instead,
        # because a resource that raises would crash the tick.
        if context.run is not None:
            self.ensure_reachable()

    def ensure_reachable(self) -> None:
        """Fail fast with the URI and a hint when the tracking store cannot be used."""
        parsed = urlparse(self.tracking_uri)
        if parsed.scheme in ("http", "https"):
            url = self.tracking_uri.rstrip("/") + "/health"
            try:
                with urllib.request.urlopen(url, timeout=self.connect_timeout_seconds) as reply:
                    reply.read()
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise MlflowUnreachableError(
                    f"MLflow tracking server {self.tracking_uri} is unreachable ({reason}). "
                    "Start it, or unset MLFLOW_TRACKING_URI to use the local SQLite store."
                ) from error
        elif parsed.scheme == "sqlite":
            database = Path(self.tracking_uri.removeprefix("sqlite:///"))
            try:
                database.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise MlflowUnreachableError(
                    f"cannot create the MLflow store directory {database.parent}: {error}"
                ) from error
        elif parsed.scheme in ("", "file"):
            raise MlflowUnreachableError(
                f"MLflow tracking URI {self.tracking_uri!r} is a plain file store, which MLflow 3 "
                "no longer accepts; use sqlite:///path/to/mlflow.db instead"
            )

    def client(self) -> Any:
        """An `MlflowClient` for this store, with the fluent API pointed at it too."""
        if self._client is None:
            # The model's environment is its pinned requirements, not this platform's lock
            # file; and progress bars only garble Dagster's captured logs.
            os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            import mlflow
            from mlflow.tracking import MlflowClient

            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            self._client = MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)
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
        if self.artifact_location or not self.tracking_uri.startswith("sqlite:///"):
            return self.artifact_location
        database = Path(self.tracking_uri.removeprefix("sqlite:///"))
        return (database.parent / "artifacts").resolve().as_uri()

    def _find_or_create_parent_run(self, context: dg.AssetExecutionContext) -> str:
        client = self.client()
        experiment_id = self.experiment_id()
        found = client.search_runs(
            [experiment_id],
            filter_string=f"tags.{DAGSTER_RUN_TAG} = '{context.run.run_id}'",
            max_results=10,
        )
        parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
        if parents:
            return parents[0].info.run_id
        run = client.create_run(
            experiment_id,
            run_name=f"dagster-{context.run.run_id[:8]}",
            tags={DAGSTER_RUN_TAG: context.run.run_id, "dagster_job": context.job_name},
        )
        return run.info.run_id

    @contextmanager
    def parent_run(self, context: dg.AssetExecutionContext) -> Iterator[str]:
        """The MLflow run of this Dagster run, marked RUNNING while a step uses it.

        On exit it is marked FINISHED, or FAILED if the step raised, so the MLflow UI shows
        the state of the last step that touched it.
        """
        client = self.client()
        run_id = self._find_or_create_parent_run(context)
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

    def log_params(self, run_id: str, values: Mapping[str, Any]) -> None:
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

    def resolve_version(self, alias: str, version: str | None = None) -> Any:
        """The registered version to deploy: `version` if given, else the one `alias` names."""
        from mlflow.exceptions import MlflowException

        name = self.registered_model_name
        try:
            if version:
                return self.client().get_model_version(name, version)
            return self.client().get_model_version_by_alias(name, alias)
        except MlflowException as error:
            wanted = f"version {version}" if version else f"alias {alias!r}"
            raise LookupError(
                f"model {name!r} has no {wanted} in {self.tracking_uri}; run `make train` "
                f"first, or pick an existing version ({error.message})"
            ) from error

    def qualified_versions(self, passed_tag: str, alias: str) -> list[int]:
        """Versions that passed the blocking checks: tagged so at registration, or aliased.

        Searches do not return aliases, so the aliased version is looked up on its own.
        """
        from mlflow.exceptions import MlflowException

        name = self.registered_model_name
        found = self.client().search_model_versions(f"name = '{name}'")
        qualified = {int(v.version) for v in found if v.tags.get(passed_tag) == "true"}
        if found:
            with contextlib.suppress(MlflowException):  # no version carries the alias
                qualified.add(int(self.client().get_model_version_by_alias(name, alias).version))
        return sorted(qualified)

    def download_model(self, version: str, destination: Path) -> Path:
        """The model version's files under `destination/<version>`, downloaded once."""
        import mlflow.artifacts

        target = destination / str(version)
        if target.exists():
            return target
        destination.mkdir(parents=True, exist_ok=True)
        staging = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{self.registered_model_name}/{version}",
                dst_path=str(destination / f".{version}.partial"),
                tracking_uri=self.tracking_uri,
            )
        )
        staging.rename(target)
        return target

    def _ui_base(self) -> str | None:
        if self.ui_url:
            return self.ui_url.rstrip("/")
        if urlparse(self.tracking_uri).scheme in ("http", "https"):
            return self.tracking_uri.rstrip("/")
        return None

    def run_url(self, run_id: str) -> str | None:
        base = self._ui_base()
        if base is None:
            return None
        return f"{base}/#/experiments/{self.experiment_id()}/runs/{run_id}"

    def model_version_url(self, version: str) -> str | None:
        base = self._ui_base()
        if base is None:
            return None
        return f"{base}/#/models/{self.registered_model_name}/versions/{version}"
