"""The platform's index: every asset, check, job, sensor and resource, in lineage order.

Executor: in-process by default, every step in the run's own process; `PENGUINS_EXECUTOR`
picks a step executor instead (multiprocess, ECS or Kubernetes; see `defs/executors.py`).
Asset values pass through the local filesystem, or S3 once `PENGUINS_IO_BUCKET` is set.

Resources take their settings from the environment variables declared with each setting
(`penguins_platform/settings.py`) when those are set (the UI then shows the variable, not its
value), and from their declared defaults otherwise.
"""

import dagster as dg

from penguins_platform.defs.data import (
    penguins,
    penguins_checks,
    raw_penguins,
    raw_penguins_checks,
)
from penguins_platform.defs.deployment import azure_endpoint, local_endpoint, sagemaker_endpoint
from penguins_platform.defs.executors import executor_from_env
from penguins_platform.defs.jobs import (
    deployment_job,
    local_endpoint_job,
    monitoring_job,
    promotion_job,
    training_job,
)
from penguins_platform.defs.monitoring import (
    ground_truth_labels,
    monitoring_report,
    production_data,
)
from penguins_platform.defs.registry import beats_champion, champion, registered_model_version
from penguins_platform.defs.resources import (
    AssetStorage,
    AzureMLEndpoint,
    FoldWorkers,
    LocalEndpoint,
    MlflowTracking,
    Monitoring,
    S3Storage,
    SageMakerEndpoint,
    from_env,
)
from penguins_platform.defs.schedules import monitoring_schedule, training_schedule
from penguins_platform.defs.sensors import champion_sensor, retraining_sensor
from penguins_platform.defs.traffic import traffic_job
from penguins_platform.defs.training import (
    accuracy_threshold,
    cross_validation_scores,
    feature_transformer,
    trained_model,
)
from penguins_platform.deploy.azure import AzureSettings
from penguins_platform.deploy.sagemaker import SageMakerSettings
from penguins_platform.deploy.selection import TargetSettings
from penguins_platform.monitoring.settings import MonitoringSettings
from penguins_platform.project import prepare_jax_cache
from penguins_platform.runtime import freeze_what_is_loaded, tune_garbage_collector
from penguins_platform.serving.settings import LocalEndpointSettings
from penguins_platform.settings import AutomationSettings, ExecutionSettings
from penguins_platform.tracking.store import MlflowStore

prepare_jax_cache()
# Every process that loads this code location (a run worker of `dagster dev`, the code
# server, the daemon) imports seconds of libraries; see `runtime.py`.
tune_garbage_collector()

# One S3 client's settings for the data location and the asset values; boto3's environment
# (AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE) fills what is unset.
s3 = S3Storage()

defs = dg.Definitions(
    assets=[
        raw_penguins,
        penguins,
        feature_transformer,
        cross_validation_scores,
        trained_model,
        registered_model_version,
        champion,
        local_endpoint,
        sagemaker_endpoint,
        azure_endpoint,
        production_data,
        ground_truth_labels,
        monitoring_report,
    ],
    asset_checks=[
        raw_penguins_checks,
        penguins_checks,
        accuracy_threshold,
        beats_champion,
    ],
    jobs=[
        training_job,
        promotion_job,
        local_endpoint_job,
        deployment_job,
        monitoring_job,
        traffic_job,
    ],
    sensors=[champion_sensor, retraining_sensor],
    schedules=[training_schedule, monitoring_schedule],
    resources={
        "io_manager": AssetStorage(**from_env(AssetStorage), s3=s3),
        "mlflow": MlflowTracking(**from_env(MlflowTracking)),
        "s3": s3,
        "fold_workers": FoldWorkers(**from_env(FoldWorkers)),
        "local": LocalEndpoint(**from_env(LocalEndpoint)),
        "sagemaker": SageMakerEndpoint(**from_env(SageMakerEndpoint)),
        "azure": AzureMLEndpoint(**from_env(AzureMLEndpoint)),
        "monitoring": Monitoring(**from_env(Monitoring)),
    },
    executor=executor_from_env(),
)

# Every settings class, each with the environment variables it reads: the source of
# `python -m penguins_platform settings` and of the README's tables of variables.
SETTINGS = (
    MlflowStore,
    LocalEndpointSettings,
    TargetSettings,
    SageMakerSettings,
    AzureSettings,
    MonitoringSettings,
    AutomationSettings,
    ExecutionSettings,
    FoldWorkers,
    AssetStorage,
)

# The definitions live as long as the process that loads them.
freeze_what_is_loaded()
