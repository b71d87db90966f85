"""The SageMaker deployment target, verified by the same checks as the local endpoint."""

import tempfile
from pathlib import Path

import dagster as dg

from penguins_platform.assets.deployment import (
    GROUP,
    CloudDeploymentConfig,
    deployment_check_results,
    deployment_check_specs,
    smoke_metadata,
    smoke_records,
)
from penguins_platform.assets.registry import registered_model_version
from penguins_platform.resources.mlflow import MlflowTracking
from penguins_platform.resources.sagemaker import ENABLE_HINT, SageMakerTarget

# Throttling that outlasts boto3's own retries is retried by Dagster, this long apart.
THROTTLE_RETRIES = 3
THROTTLE_WAIT_SECONDS = 30.0


@dg.asset(
    group_name=GROUP,
    deps=[registered_model_version],
    kinds={"sagemaker", "aws"},
    check_specs=deployment_check_specs("sagemaker_endpoint"),
    description=(
        "The registered version (champion by default) on a SageMaker real-time endpoint: the "
        "MLflow model uploaded to S3, a model tagged with the version, an endpoint config "
        "(with data capture when configured), the endpoint created or updated, InService, "
        "then smoke-tested through sagemaker-runtime. " + ENABLE_HINT
    ),
)
def sagemaker_endpoint(
    context: dg.AssetExecutionContext,
    config: CloudDeploymentConfig,
    penguins,
    mlflow: MlflowTracking,
    sagemaker: SageMakerTarget,
) -> dg.MaterializeResult:
    from penguins_platform.cloud.sagemaker import SageMakerDeployer, is_throttling
    from penguins_platform.serving.smoke import smoke_test

    if not sagemaker.enabled:
        raise dg.Failure(description=f"the SageMaker target is not configured. {ENABLE_HINT}")
    settings = sagemaker.settings()
    version = str(mlflow.resolve_version(config.alias, config.version).version)
    records, species = smoke_records(penguins, config.smoke_rows)
    try:
        deployer = SageMakerDeployer(sagemaker.session(settings), settings, log=context.log)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = mlflow.download_model(version, Path(tmp))
            deployment = deployer.deploy(version, model_dir)
    except Exception as error:
        if is_throttling(error) or is_throttling(error.__cause__):
            raise dg.RetryRequested(
                max_retries=THROTTLE_RETRIES, seconds_to_wait=THROTTLE_WAIT_SECONDS
            ) from error
        raise
    smoke = smoke_test(deployer.invoke, records, config.latency_requests)
    checks = deployment_check_results(
        version, deployer.served_version(), smoke, config.latency_bound_ms
    )
    if not all(check.passed for check in checks):
        context.log.error(f"version {version} failed its deployment checks; rolling back")
        deployer.roll_back(deployment)
    return dg.MaterializeResult(
        metadata={
            "endpoint": settings.endpoint_name,
            "region": settings.region,
            "serving_version": str(deployer.served_version()),
            "attempted_version": version,
            "action": deployment.action,
            "endpoint_config": deployment.config_name,
            "previous_config": deployment.previous_config or "",
            "console": dg.MetadataValue.url(deployer.console_url),
            **smoke_metadata(records, species, smoke),
        },
        check_results=checks,
    )
