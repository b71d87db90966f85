"""The Azure ML deployment target, verified by the same checks as the local endpoint."""

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
from penguins_platform.resources.azure import ENABLE_HINT, AzureTarget
from penguins_platform.resources.mlflow import MlflowTracking


@dg.asset(
    group_name=GROUP,
    deps=[registered_model_version],
    kinds={"azure"},
    check_specs=deployment_check_specs("azure_endpoint"),
    description=(
        "The registered version (champion by default) on an Azure ML managed online endpoint: "
        "registered as an MLflow model, deployed as `{endpoint}-{version}` beside the live "
        "deployment, smoke-tested through it, and only then given 100% of the traffic, after "
        "which the previous deployment is deleted. " + ENABLE_HINT
    ),
)
def azure_endpoint(
    context: dg.AssetExecutionContext,
    config: CloudDeploymentConfig,
    penguins,
    mlflow: MlflowTracking,
    azure: AzureTarget,
) -> dg.MaterializeResult:
    from penguins_platform.cloud.azure import AzureDeployer
    from penguins_platform.serving.smoke import smoke_test

    if not azure.enabled:
        raise dg.Failure(description=f"the Azure ML target is not configured. {ENABLE_HINT}")
    version = str(mlflow.resolve_version(config.alias, config.version).version)
    records, species = smoke_records(penguins, config.smoke_rows)
    deployer = AzureDeployer(azure.ml_client(), azure.settings(), azure.registrar(), context.log)
    with tempfile.TemporaryDirectory() as tmp:
        deployment = deployer.deploy(version, mlflow.download_model(version, Path(tmp)))
    smoke = smoke_test(
        deployer.invoker(deployment.deployment_name), records, config.latency_requests
    )
    candidate = deployment_check_results(version, version, smoke, config.latency_bound_ms)
    if deployment.action != "unchanged":
        if all(check.passed for check in candidate):
            deployer.promote(deployment)
            context.log.info(f"{deployment.deployment_name} now takes 100% of the traffic")
        else:
            context.log.error(
                f"version {version} failed its deployment checks; "
                f"{deployment.previous_deployment or 'no deployment'} keeps the traffic"
            )
            deployer.discard(deployment.deployment_name)
    serving = deployer.served_version()
    return dg.MaterializeResult(
        metadata={
            "endpoint": azure.endpoint_name,
            "workspace": f"{azure.resource_group}/{azure.workspace}",
            "serving_version": str(serving),
            "attempted_version": version,
            "action": deployment.action,
            "deployment": deployment.deployment_name,
            "previous_deployment": deployment.previous_deployment or "",
            **smoke_metadata(records, species, smoke),
        },
        check_results=deployment_check_results(version, serving, smoke, config.latency_bound_ms),
    )
