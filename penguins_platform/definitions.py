"""The platform's index: every asset, check, job, sensor and resource, in lineage order.

Executor: in-process by default, every step in the run's own process; `PENGUINS_EXECUTOR`
picks a step executor instead (multiprocess, ECS or Kubernetes; see `defs/executors.py`).
Asset values pass through the local filesystem, or S3 once `PENGUINS_IO_BUCKET` is set.

Resources take their settings from the environment variables named below when those are set
(the UI then shows the variable, not its value), and from their declared defaults otherwise.
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
    training_job,
)
from penguins_platform.defs.monitoring import (
    ground_truth_labels,
    monitoring_report,
    production_data,
)
from penguins_platform.defs.registry import registered_model_version
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
from penguins_platform.defs.sensors import new_model_version_sensor, retraining_sensor
from penguins_platform.defs.traffic import traffic_job
from penguins_platform.defs.training import (
    accuracy_threshold,
    cross_validation_scores,
    feature_transformer,
    trained_model,
)
from penguins_platform.project import prepare_jax_cache
from penguins_platform.runtime import freeze_what_is_loaded, tune_garbage_collector

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
    ],
    jobs=[training_job, local_endpoint_job, deployment_job, monitoring_job, traffic_job],
    sensors=[new_model_version_sensor, retraining_sensor],
    schedules=[training_schedule, monitoring_schedule],
    resources={
        "io_manager": AssetStorage(
            **from_env(AssetStorage, bucket="PENGUINS_IO_BUCKET", prefix="PENGUINS_IO_PREFIX"),
            s3=s3,
        ),
        "mlflow": MlflowTracking(
            **from_env(
                MlflowTracking,
                tracking_uri="MLFLOW_TRACKING_URI",
                experiment_name="MLFLOW_EXPERIMENT_NAME",
                registered_model_name="PENGUINS_MODEL_NAME",
                artifact_location="MLFLOW_ARTIFACT_LOCATION",
                ui_url="MLFLOW_UI_URL",
            )
        ),
        "s3": s3,
        "fold_workers": FoldWorkers(**from_env(FoldWorkers, workers="PENGUINS_FOLD_WORKERS")),
        "endpoint": LocalEndpoint(
            **from_env(
                LocalEndpoint,
                host="PENGUINS_ENDPOINT_HOST",
                port="PENGUINS_ENDPOINT_PORT",
                state_dir="PENGUINS_ENDPOINT_STATE_DIR",
                capture="PENGUINS_CAPTURE",
                capture_uri="PENGUINS_CAPTURE_URI",
            )
        ),
        "sagemaker": SageMakerEndpoint(
            **from_env(
                SageMakerEndpoint,
                endpoint_name="SAGEMAKER_ENDPOINT",
                region="AWS_REGION",
                execution_role_arn="SAGEMAKER_EXECUTION_ROLE_ARN",
                assume_role_arn="AWS_ROLE",
                artifact_bucket="SAGEMAKER_BUCKET",
                instance_type="SAGEMAKER_INSTANCE_TYPE",
                instance_count="SAGEMAKER_INSTANCE_COUNT",
                image_uri="SAGEMAKER_IMAGE_URI",
                data_capture_uri="SAGEMAKER_DATA_CAPTURE_URI",
            )
        ),
        "monitoring": Monitoring(
            **from_env(
                Monitoring,
                labeler="PENGUINS_LABELER",
                labels_csv="PENGUINS_LABELS_CSV",
                ground_truth_quality="PENGUINS_GROUND_TRUTH_QUALITY",
                retention_days="PENGUINS_CAPTURE_RETENTION_DAYS",
                retention_rows="PENGUINS_CAPTURE_RETENTION_ROWS",
                report_dir="PENGUINS_REPORT_DIR",
            )
        ),
        "azure": AzureMLEndpoint(
            **from_env(
                AzureMLEndpoint,
                subscription_id="AZURE_SUBSCRIPTION_ID",
                resource_group="AZURE_RESOURCE_GROUP",
                workspace="AZURE_WORKSPACE",
                endpoint_name="AZURE_ENDPOINT",
                instance_type="AZURE_INSTANCE_TYPE",
                instance_count="AZURE_INSTANCE_COUNT",
            )
        ),
    },
    executor=executor_from_env(),
)

# The definitions live as long as the process that loads them.
freeze_what_is_loaded()
