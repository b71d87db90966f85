"""Resources: the MLflow store, S3, where asset values live, and the three deployment targets.

Each resource mixes in the plain settings class of what it configures (`MlflowStore`,
`LocalEndpointSettings`, `SageMakerSettings`, `AzureSettings`, `MonitoringSettings`), so every
setting is declared once, with its default, its description and the environment variable that
sets it, and the UI's resource page shows them all. The resources add only what Dagster needs:
a reachability probe when a run starts, and the deployer that a target's settings build.
Whether a deployment uses a target is `target_status`'s to say: `PENGUINS_TARGETS` (or its
default where the process runs) and whether the target is configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import typing
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

import dagster as dg
from pydantic import BaseModel, Field, PrivateAttr

from penguins_platform.deploy import azure, sagemaker, selection
from penguins_platform.deploy.local import LocalTarget
from penguins_platform.monitoring.settings import MonitoringSettings
from penguins_platform.serving.settings import LocalEndpointSettings
from penguins_platform.settings import Settings, setting, variable, variables
from penguins_platform.tracking.store import MlflowStore

if TYPE_CHECKING:
    import pandas as pd
    from botocore.client import BaseClient

    from penguins_platform.capture.contract import CaptureSource
    from penguins_platform.deploy.target import DeploymentTarget
    from penguins_platform.ml.evaluation import BackgroundFolds, FoldResult, FoldSplit
    from penguins_platform.ml.model import TrainingParameters

PlainSettings = TypeVar("PlainSettings", bound=BaseModel)


def from_env(resource: type[BaseModel]) -> dict[str, Any]:
    """An `EnvVar` for each setting of `resource` whose environment variable is set (the
    variables are declared with the settings, see `penguins_platform/settings.py`), so the UI
    shows where a value came from, and never a secret's value. A setting whose variable is
    unset keeps its default.

    Dagster's EnvVar resolves to text or, with `EnvVar.int`, an integer; a float or a choice
    field gets the variable's value itself, checked here so a typo fails with the variable's
    name. The values are keyword arguments for `resource`, typed `Any` because an EnvVar
    stands in for a field of any type until Dagster resolves it.
    """
    values: dict[str, dg.EnvVar | float | str] = {}
    for field, name in variables(resource).items():
        value = os.environ.get(name)
        if not value:
            continue
        annotation = resource.model_fields[field].annotation
        kinds = set(typing.get_args(annotation)) - {type(None)} or {annotation}
        if typing.get_origin(annotation) is Literal:
            choices = typing.get_args(annotation)
            if value not in choices:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")
            values[field] = value
        elif kinds == {int}:
            values[field] = dg.EnvVar.int(name)
        elif kinds == {float}:
            try:
                values[field] = float(value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a number") from None
        else:
            values[field] = dg.EnvVar(name)
    return values


def plain_settings(resource: BaseModel, settings: type[PlainSettings]) -> PlainSettings:
    """The settings part of a resource as the plain object the Dagster-free code takes."""
    return settings.model_validate(resource.model_dump(include=set(settings.model_fields)))


class MlflowTracking(dg.ConfigurableResource, MlflowStore):
    """One MLflow parent run per Dagster run, plus the model registry.

    Why not dagster-mlflow: its 0.29 `mlflow_tracking` is an op-era `@resource` that sets
    `os.environ` for the whole process and ends the MLflow run when each step's resource
    is torn down, so a multi-step asset job scatters its steps over several runs. This
    resource finds or creates the parent run by a tag holding the Dagster run id, so every
    step of a run, in any process, logs to the same MLflow run.

    It checks that the store is reachable when a run starts, so an unreachable server fails
    the run in seconds instead of after training.
    """

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run fails fast here. A sensor tick has no run: it probes itself and skips instead,
        # because a resource that raises would crash the tick.
        if context.run is not None:
            self.ensure_reachable()

    @contextlib.contextmanager
    def parent_run(
        self, context: dg.AssetExecutionContext | dg.OpExecutionContext
    ) -> Iterator[str]:
        """The MLflow run of this Dagster run, marked RUNNING while the step uses it."""
        with self.running(self.parent_run_id(context.run.run_id, context.job_name)) as run_id:
            yield run_id


class S3Storage(dg.ConfigurableResource):
    """An S3 client from `dagster_aws.s3.S3Resource`, built on first use.

    Why a wrapper: importing `dagster_aws` costs more than importing dagster itself (it loads
    its components and test utilities), and Dagster imports the definitions on every run,
    sensor tick and UI reload. This resource defers that import to the step that reads S3.
    Unset fields fall back to boto3's own environment (`AWS_REGION`, `AWS_ENDPOINT_URL`,
    `AWS_PROFILE`, credentials), so credentials never pass through Dagster config.
    """

    region_name: str | None = Field(default=None, description="AWS region; default from boto3.")
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint, for S3-compatible stores or an emulator."
    )
    profile_name: str | None = Field(default=None, description="Named AWS profile to use.")

    def client(self) -> BaseClient:
        from dagster_aws.s3 import S3Resource

        return S3Resource(
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            profile_name=self.profile_name,
        ).get_client()


class AssetStorageError(RuntimeError):
    """The configured asset bucket cannot be used; the message names it."""


class AssetStorage(dg.ConfigurableIOManagerFactory, Settings):
    """Where asset values pass between steps: S3 when a bucket is set, this machine otherwise.

    Locally it is Dagster's filesystem I/O manager under the instance's storage folder. With a
    bucket it is dagster-aws's `S3PickleIOManager`, so steps that run in separate ECS tasks
    or pods (and the next run) read what the others wrote. The choice is made when a run
    starts, so loading the definitions never imports dagster_aws (about 2 s on its own).
    """

    bucket: str | None = setting(
        "PENGUINS_IO_BUCKET",
        None,
        "S3 bucket for asset values, so steps in separate tasks or pods share them; unset keeps "
        "them on this machine.",
    )
    prefix: str = setting("PENGUINS_IO_PREFIX", "dagster", "Key prefix under the bucket.")
    s3: S3Storage = Field(default_factory=S3Storage, description="The S3 client's settings.")

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.IOManager:
        if not self.bucket:
            return dg.FilesystemIOManager().create_io_manager(context)
        from botocore.exceptions import BotoCoreError, ClientError
        from dagster_aws.s3 import S3PickleIOManager, S3Resource

        s3 = S3Resource(
            region_name=self.s3.region_name,
            endpoint_url=self.s3.endpoint_url,
            profile_name=self.s3.profile_name,
        )
        # One cheap call when the run starts, so a wrong bucket or missing credentials fail
        # the run before any step, naming the bucket, instead of boto3's bare NoSuchBucket
        # after the first step's work.
        try:
            s3.get_client().head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            name = variable(AssetStorage, "bucket")
            raise AssetStorageError(
                f"the asset storage bucket {self.bucket!r} ({name}) cannot be "
                f"used: {error}. Create it, or fix {name} and the S3 credentials."
            ) from None
        return S3PickleIOManager(s3_resource=s3, s3_bucket=self.bucket, s3_prefix=self.prefix)


class TargetResource(Protocol):
    """A deployment target as configured: its name in `PENGUINS_TARGETS`, whether it is
    configured (`enabled`: it has every setting it needs) and how to configure it, its
    deployer. Whether a deployment uses it is `target_status`."""

    target_name: ClassVar[selection.TargetName]
    enable_hint: ClassVar[str]

    @property
    def enabled(self) -> bool: ...

    def target(self, model_name: str, log: logging.Logger) -> DeploymentTarget: ...


class LocalEndpoint(dg.ConfigurableResource, LocalEndpointSettings):
    """The local HTTP endpoint, a long-lived process on this machine. It needs no
    configuration; `PENGUINS_TARGETS` leaves it out, and so does running inside an ECS task or
    a Kubernetes pod, where the server would die with the task.

    Binds loopback by default. Its pid, log, admin token and models live in `state_dir`, so
    `make stop` and later deployments find it.
    """

    target_name: ClassVar[selection.TargetName] = "local"
    enable_hint: ClassVar[str] = ""

    @property
    def enabled(self) -> bool:
        return True

    def target(self, model_name: str, log: logging.Logger | None = None) -> LocalTarget:
        return LocalTarget(plain_settings(self, LocalEndpointSettings), model_name, log)


class SageMakerEndpoint(dg.ConfigurableResource, sagemaker.SageMakerSettings):
    """A SageMaker real-time endpoint; disabled while it has no execution role or bucket."""

    target_name: ClassVar[selection.TargetName] = "sagemaker"
    enable_hint: ClassVar[str] = sagemaker.ENABLE_HINT

    def target(
        self, model_name: str, log: logging.Logger | None = None
    ) -> sagemaker.SageMakerTarget:
        """The deployer, once the settings pass every check that needs no AWS call."""
        settings = plain_settings(self, sagemaker.SageMakerSettings)
        return sagemaker.SageMakerTarget.connect(settings, model_name, log)


class AzureMLEndpoint(dg.ConfigurableResource, azure.AzureSettings):
    """An Azure ML managed online endpoint; disabled while the workspace is not named."""

    target_name: ClassVar[selection.TargetName] = "azure"
    enable_hint: ClassVar[str] = azure.ENABLE_HINT

    def registrar(self) -> azure.ModelRegistrar:
        return azure.WorkspaceModelRegistrar()

    def target(self, model_name: str, log: logging.Logger | None = None) -> azure.AzureTarget:
        settings = plain_settings(self, azure.AzureSettings)
        return azure.AzureTarget(self.ml_client(), settings, self.registrar(), model_name, log)


class FoldWorkers(dg.ConfigurableResource, Settings):
    """How many cross-validation folds train at once inside the run's own process.

    With the in-process executor Dagster runs one step at a time, so `split_folds` starts
    every fold in background threads and each `score_fold` step takes its fold's result,
    waiting if it must: on two cores the folds train two at a time, and the steps, their
    logs and their MLflow runs stay as they are. With a step executor (multiprocess, ECS,
    Kubernetes) each fold is a process of its own already, and each step trains its own.
    """

    workers: int = setting(
        "PENGUINS_FOLD_WORKERS",
        0,
        "Cross-validation folds training at once in the run's process: 0 means one per CPU "
        "core this process may use (on one core, one after another); 1 turns the background "
        "threads off.",
    )
    _background: BackgroundFolds | None = PrivateAttr(default=None)

    def start(
        self, df: pd.DataFrame, splits: list[FoldSplit], parameters: TrainingParameters
    ) -> int:
        """Start the folds in the background when that pays; how many train at once."""
        from penguins_platform.defs.executors import steps_run_in_process
        from penguins_platform.ml.evaluation import BackgroundFolds, fold_workers

        if not steps_run_in_process():
            return 1
        workers = fold_workers(self.workers, len(splits), parameters)
        if workers > 1:
            if self._background is None:
                self._background = BackgroundFolds(workers)
            self._background.start(df, splits, parameters)
        return workers

    def score(
        self, df: pd.DataFrame, split: FoldSplit, parameters: TrainingParameters
    ) -> FoldResult:
        """The fold's result: from the background when it was started there, else trained now."""
        from penguins_platform.ml.evaluation import score_fold

        started = self._background.take(split, parameters) if self._background else None
        return started or score_fold(df, split, parameters)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._background is not None:
            self._background.close()


class Monitoring(dg.ConfigurableResource, MonitoringSettings):
    """How production rows get their ground truth, how long captured rows are kept, and
    where the monitoring reports go (`MonitoringSettings`). Deployment-wide settings, so they
    come from the environment; each evaluation's thresholds are run config of the monitoring
    assets."""


def target_status(resource: TargetResource) -> selection.TargetStatus:
    """Whether a deployment uses `resource`'s target here, and if not, why and what turns it
    on: `PENGUINS_TARGETS` (or its default where this process runs) and its configuration."""
    return selection.target_status(resource.target_name, resource.enabled, resource.enable_hint)


def capture_sources(
    model_name: str, local: LocalEndpoint, sagemaker: SageMakerEndpoint, log: logging.Logger
) -> dict[str, CaptureSource]:
    """Every enabled target's captured traffic, by target name."""
    targets: dict[str, DeploymentTarget] = {
        resource.target_name: resource.target(model_name, log)
        for resource in (local, sagemaker)
        if target_status(resource).enabled
    }
    sources = {name: target.capture_source() for name, target in targets.items()}
    return {name: source for name, source in sources.items() if source is not None}
