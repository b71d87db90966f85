"""The platform's index: every asset, check, job and resource, in lineage order.

Executor: the in-process executor runs every step in one process. keras+jax, mlflow and
scikit-learn cost seconds to import; the multiprocess executor would pay that again in
every step, which is slower than the training itself on this data.
"""

import os

import dagster as dg

from penguins_platform.assets.azure import azure_endpoint
from penguins_platform.assets.data import (
    categories_are_known,
    measurements_are_numeric,
    measurements_are_plausible,
    missing_values_are_bounded,
    penguins,
    raw_penguins,
    required_columns,
    species_are_known,
)
from penguins_platform.assets.deployment import local_endpoint
from penguins_platform.assets.registry import registered_model_version
from penguins_platform.assets.sagemaker import sagemaker_endpoint
from penguins_platform.assets.training import (
    accuracy_threshold,
    cross_validation_scores,
    feature_transformer,
    trained_model,
)
from penguins_platform.jobs import deployment_job, local_endpoint_job, training_job
from penguins_platform.project import (
    DEFAULT_SERVING_DIR,
    default_tracking_uri,
    prepare_jax_cache,
)
from penguins_platform.resources.azure import AzureTarget
from penguins_platform.resources.local_endpoint import LocalEndpoint
from penguins_platform.resources.mlflow import MlflowTracking
from penguins_platform.resources.s3 import S3Storage
from penguins_platform.resources.sagemaker import SageMakerTarget
from penguins_platform.sensors import new_model_version_sensor


def env_or(name: str, default: str | None) -> dg.EnvVar | str | None:
    """`EnvVar(name)` when it is set, so the UI shows where a value came from, else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


prepare_jax_cache()

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
    ],
    asset_checks=[
        required_columns,
        measurements_are_numeric,
        species_are_known,
        categories_are_known,
        measurements_are_plausible,
        missing_values_are_bounded,
        accuracy_threshold,
    ],
    jobs=[training_job, local_endpoint_job, deployment_job],
    sensors=[new_model_version_sensor],
    resources={
        "mlflow": MlflowTracking(
            tracking_uri=env_or("MLFLOW_TRACKING_URI", default_tracking_uri()),
            experiment_name=env_or("MLFLOW_EXPERIMENT_NAME", "penguins"),
            registered_model_name=env_or("PENGUINS_MODEL_NAME", "penguins"),
            artifact_location=env_or("MLFLOW_ARTIFACT_LOCATION", None),
            ui_url=env_or("MLFLOW_UI_URL", "http://127.0.0.1:5000"),
        ),
        "s3": S3Storage(),
        "endpoint": LocalEndpoint(
            host=env_or("PENGUINS_ENDPOINT_HOST", "127.0.0.1"),
            port=int(os.environ.get("PENGUINS_ENDPOINT_PORT", "8080")),
            state_dir=env_or("PENGUINS_ENDPOINT_STATE_DIR", str(DEFAULT_SERVING_DIR)),
            capture_enabled=os.environ.get("PENGUINS_CAPTURE", "on") != "off",
            capture_uri=env_or("PENGUINS_CAPTURE_URI", None),
        ),
        "sagemaker": SageMakerTarget(
            endpoint_name=env_or("SAGEMAKER_ENDPOINT", "penguins"),
            region=env_or("AWS_REGION", "us-east-1"),
            execution_role_arn=env_or("SAGEMAKER_EXECUTION_ROLE_ARN", None),
            assume_role_arn=env_or("AWS_ROLE", None),
            artifact_bucket=env_or("SAGEMAKER_BUCKET", None),
            instance_type=env_or("SAGEMAKER_INSTANCE_TYPE", "ml.m4.xlarge"),
            instance_count=int(os.environ.get("SAGEMAKER_INSTANCE_COUNT", "1")),
            image_uri=env_or("SAGEMAKER_IMAGE_URI", None),
            data_capture_uri=env_or("SAGEMAKER_DATA_CAPTURE_URI", None),
        ),
        "azure": AzureTarget(
            subscription_id=env_or("AZURE_SUBSCRIPTION_ID", None),
            resource_group=env_or("AZURE_RESOURCE_GROUP", None),
            workspace=env_or("AZURE_WORKSPACE", None),
            endpoint_name=env_or("AZURE_ENDPOINT", "penguins"),
            instance_type=env_or("AZURE_INSTANCE_TYPE", "Standard_DS3_v2"),
            instance_count=int(os.environ.get("AZURE_INSTANCE_COUNT", "1")),
        ),
    },
    executor=dg.in_process_executor,
)
