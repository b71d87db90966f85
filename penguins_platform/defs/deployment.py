"""Deployment stage: registered versions on endpoints, each verified by the same checks.

One asset factory runs one flow for every target: resolve the version (the champion unless
a version is given, which is how a rollback is launched), download it, deploy it, smoke-test
it with rows of the data, evaluate three blocking checks, then promote it, or roll back so
that what served before serves again. `local_endpoint`, `sagemaker_endpoint` and
`azure_endpoint` are three calls of the factory; a fourth target is one more.

A target that a deployment does not use (`PENGUINS_TARGETS` leaves it out, a cloud target is
not configured, the local endpoint runs inside an ECS task or a pod) is skipped, not failed:
the asset is not materialized, the run log says how to enable it, and the run succeeds. A
target that `PENGUINS_TARGETS` names but that is not configured fails, naming what to set.
"""

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs import metadata
from penguins_platform.defs.registry import champion
from penguins_platform.defs.resources import (
    AzureMLEndpoint,
    MlflowTracking,
    SageMakerEndpoint,
    TargetResource,
    target_status,
)
from penguins_platform.deploy.target import DeployError, DeploymentTarget, Fact, Link, LocalFile
from penguins_platform.ml import schema
from penguins_platform.tracking.contract import CHAMPION_ALIAS

if TYPE_CHECKING:
    import pandas as pd

    from penguins_platform.deploy.smoke import SmokeResult

GROUP = "deployment"
DEPLOYMENT_CHECKS = {
    "serves_expected_version": "The endpoint serves the version this run deployed, not a stale "
    "or half-deployed one.",
    "smoke_predictions_valid": "Rows of the data each get a species and a probability.",
    "latency_under_bound": "Single-row requests answer within the configured p99 bound.",
}
NOT_RUN = "not run: the deployment failed"

# Annotations stay evaluated here (no `from __future__ import annotations`): Dagster reads the
# `config` parameter's class from the factory-made function's signature.


class DeploymentConfig(dg.Config):
    alias: str = Field(default=CHAMPION_ALIAS, description="Deploy the version this alias names.")
    version: str | None = Field(
        default=None, description="Deploy this version instead of the alias (a rollback)."
    )
    smoke_rows: int = Field(
        default=defaults.SMOKE_ROWS, ge=1, description="Rows from the data sent as a smoke test."
    )
    latency_requests: int = Field(
        default=defaults.LATENCY_REQUESTS,
        ge=1,
        description="Single-row requests timed after the smoke test.",
    )
    latency_bound_ms: float = Field(
        default=defaults.LOCAL_LATENCY_BOUND_MS,
        gt=0,
        description="p99 single-row latency above which the check fails.",
    )


class CloudDeploymentConfig(DeploymentConfig):
    latency_bound_ms: float = Field(
        default=defaults.CLOUD_LATENCY_BOUND_MS,
        gt=0,
        description="p99 single-row latency above which the check fails.",
    )


def deployment_check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)
        for name, description in DEPLOYMENT_CHECKS.items()
    ]


def deployment_checks(
    asset: dg.AssetKey,
    expected_version: str,
    served_version: str | None,
    smoke: "SmokeResult",
    latency_bound_ms: float,
) -> list[dg.AssetCheckResult]:
    """The three deployment checks, from what the deployment and its smoke test saw."""
    p99 = smoke.latency_p99_ms
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="serves_expected_version",
            passed=served_version == expected_version,
            description=f"serves {_describe_version(served_version)}, "
            f"expected version {expected_version}",
            metadata={"expected": expected_version, "served": str(served_version)},
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="smoke_predictions_valid",
            passed=smoke.valid,
            description=smoke.error or f"{len(smoke.answers)} rows got a species and a probability",
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="latency_under_bound",
            passed=smoke.valid and p99 <= latency_bound_ms,  # NaN (no sample) compares False
            description=f"p99 {p99:.1f} ms against a bound of {latency_bound_ms:.0f} ms",
            metadata={"latency_p99_ms": p99, "latency_bound_ms": latency_bound_ms},
        ),
    ]


def failed_deployment_checks(
    asset: dg.AssetKey, expected_version: str, served_version: str | None, error: str
) -> list[dg.AssetCheckResult]:
    """The three checks when the deployment itself failed: nothing new to smoke-test."""
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="serves_expected_version",
            passed=False,
            description=f"version {expected_version} was not deployed: {error}; "
            f"{_describe_version(served_version)} serves",
            metadata={"expected": expected_version, "served": str(served_version)},
        ),
        *(
            dg.AssetCheckResult(asset_key=asset, check_name=name, passed=False, description=NOT_RUN)
            for name in ("smoke_predictions_valid", "latency_under_bound")
        ),
    ]


def _describe_version(version: str | None) -> str:
    return f"version {version}" if version is not None else "no version"


def smoke_rows(penguins: "pd.DataFrame", rows: int) -> tuple[list[dict[str, object]], list[str]]:
    """The first `rows` cleaned penguins as request records, and their species."""
    from penguins_platform.ml.features import feature_records

    sample = penguins.head(rows)
    return feature_records(sample), [str(s) for s in sample[schema.TARGET]]


def smoke_metadata(
    records: list[dict[str, object]], species: list[str], smoke: "SmokeResult"
) -> dict[str, metadata.Entry]:
    """Smoke predictions beside the true species, accuracy and latency, for any target."""
    if not smoke.valid:
        return {"smoke_error": smoke.error}
    correct = sum(a["prediction"] == s for a, s in zip(smoke.answers, species, strict=True))
    return {
        "smoke_predictions": metadata.key_value_table(
            [
                {**r, "species": s, "prediction": a["prediction"], "confidence": a["confidence"]}
                for r, s, a in zip(records, species, smoke.answers, strict=True)
            ],
            [(name, "string") for name in schema.FEATURES]
            + [("species", "string"), ("prediction", "string"), ("confidence", "float")],
        ),
        "smoke_accuracy": correct / len(species),
        "latency_p50_ms": smoke.latency_p50_ms,
        "latency_p99_ms": smoke.latency_p99_ms,
    }


def _metadata_value(fact: Fact) -> metadata.Entry:
    if isinstance(fact, Link):
        return dg.MetadataValue.url(fact.url)
    if isinstance(fact, LocalFile):
        return dg.MetadataValue.path(fact.path)
    return fact


def deploy_version(
    context: dg.AssetExecutionContext,
    asset: dg.AssetKey,
    config: DeploymentConfig,
    penguins: "pd.DataFrame",
    mlflow: MlflowTracking,
    resource: TargetResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The flow, for any target: resolve → download → deploy → smoke test → checks →
    promote, or roll back."""
    from penguins_platform.deploy.smoke import smoke_test

    status = target_status(resource)
    if status.unmet:
        raise dg.Failure(f"{asset.to_user_string()} cannot deploy: {status.reason}")
    if not status.enabled:
        context.log.warning(f"{asset.to_user_string()} skipped: {status.reason}")
        return
    target: DeploymentTarget = resource.target(mlflow.registered_model_name, context.log)
    version = mlflow.resolve_version(config.alias, config.version)
    records, species = smoke_rows(penguins, config.smoke_rows)
    if asset not in context.selected_asset_keys:
        yield from _verify_serving(context, asset, config, target, version, records)
        return
    try:
        with tempfile.TemporaryDirectory() as tmp:
            deployment = target.deploy(version, mlflow.download_model(version, Path(tmp)))
    except DeployError as error:
        if error.transient:
            raise dg.RetryRequested(
                max_retries=defaults.DEPLOY_RETRIES,
                seconds_to_wait=defaults.DEPLOY_RETRY_WAIT_SECONDS,
            ) from error
        failed = failed_deployment_checks(asset, version, target.served_version(), str(error))
        yield from _selected(context, asset, failed)
        raise
    context.log.info(f"{deployment.action} version {version} on the {target.label}")

    smoke = smoke_test(
        lambda batch: target.invoke(batch, deployment, smoke_test=True),
        records,
        config.latency_requests,
    )
    checks = deployment_checks(
        asset, version, target.served_version(deployment), smoke, config.latency_bound_ms
    )
    reported = _selected(context, asset, checks)
    if all(check.passed for check in checks):
        target.promote(deployment)
    else:
        try:
            target.roll_back(deployment)
        except Exception as error:
            yield from reported
            raise DeployError(
                f"version {version} failed its deployment checks, and rolling the "
                f"{target.label} back failed too: {error}"
            ) from error
        context.log.error(
            f"version {version} failed its deployment checks on the {target.label}; "
            f"{_describe_version(target.served_version())} serves"
        )
    yield dg.MaterializeResult(
        asset_key=asset,
        metadata={
            "serving_version": str(target.served_version()),
            "attempted_version": version,
            "action": deployment.action,
            **{key: _metadata_value(fact) for key, fact in target.facts(deployment).items()},
            **smoke_metadata(records, species, smoke),
        },
        check_results=reported,
    )


def _verify_serving(
    context: dg.AssetExecutionContext,
    asset: dg.AssetKey,
    config: DeploymentConfig,
    target: DeploymentTarget,
    version: str,
    records: list[dict[str, object]],
) -> Iterator[dg.AssetCheckResult]:
    """Checks run on their own (from the asset's Checks tab): verify what serves now against
    the version that should, without deploying anything."""
    from penguins_platform.deploy.smoke import smoke_test

    smoke = smoke_test(
        lambda batch: target.invoke(batch, smoke_test=True), records, config.latency_requests
    )
    checks = deployment_checks(
        asset, version, target.served_version(), smoke, config.latency_bound_ms
    )
    yield from _selected(context, asset, checks)


def _selected(
    context: dg.AssetExecutionContext, asset: dg.AssetKey, checks: list[dg.AssetCheckResult]
) -> list[dg.AssetCheckResult]:
    """The checks this run selected: a subset may leave some out, and Dagster refuses a
    result for a check it did not select."""
    selected = {key.name for key in context.selected_asset_check_keys if key.asset_key == asset}
    return [c for c in checks if c.check_name in selected]


def deployment_asset(
    name: str,
    resource_key: str,
    kinds: set[str],
    description: str,
    config_type: type[DeploymentConfig] = CloudDeploymentConfig,
) -> dg.AssetsDefinition:
    """A deployment asset for the target that the resource `resource_key` configures.

    It can be materialized alone (a rollback, from the launchpad), or its checks can run
    alone, which verifies the live endpoint without deploying.
    """

    @dg.multi_asset(
        name=name,
        specs=[
            dg.AssetSpec(
                name,
                group_name=GROUP,
                deps=[champion, "penguins"],
                kinds=kinds,
                description=description,
                skippable=True,
            )
        ],
        check_specs=deployment_check_specs(name),
        can_subset=True,
        required_resource_keys={"mlflow", resource_key},
    )
    def deployment(
        context: dg.AssetExecutionContext,
        # Dagster builds the launchpad's config from this annotation, a class the factory's
        # caller picks; no static type can name it, so mypy sees Any here.
        config: config_type,  # type: ignore[valid-type]
        penguins,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        resources = context.resources
        yield from deploy_version(
            context,
            dg.AssetKey(name),
            config,
            penguins,
            resources.mlflow,
            getattr(resources, resource_key),
        )

    return deployment


local_endpoint = deployment_asset(
    "local_endpoint",
    "local",
    kinds={"python"},
    config_type=DeploymentConfig,
    description=(
        "The registered version (champion by default) answering on a local HTTP server. The "
        "server is a service, not a step: it outlives the run. A new version is loaded beside "
        "the old one and swapped in only after it passes the server's own check, so no request "
        "fails during a redeploy. If a deployment check fails, the previous version is swapped "
        "back. Never started inside an ECS task or a Kubernetes pod, where the server would die "
        "with the task."
    ),
)

sagemaker_endpoint = deployment_asset(
    "sagemaker_endpoint",
    "sagemaker",
    kinds={"sagemaker", "aws"},
    description=(
        "The registered version (champion by default) on a SageMaker real-time endpoint: the "
        "MLflow model uploaded to S3, a model tagged with the version, an endpoint config "
        "(with data capture when configured), the endpoint created or updated, InService, "
        "then smoke-tested through sagemaker-runtime. If a check fails, the endpoint goes back "
        "to its previous config. " + SageMakerEndpoint.enable_hint
    ),
)

azure_endpoint = deployment_asset(
    "azure_endpoint",
    "azure",
    kinds={"azure"},
    description=(
        "The registered version (champion by default) on an Azure ML managed online endpoint: "
        "registered as an MLflow model, deployed as `{endpoint}-{version}` beside the live "
        "deployment, smoke-tested through it, and only then given 100% of the traffic, after "
        "which the previous deployment is deleted. " + AzureMLEndpoint.enable_hint
    ),
)

# Each deployment asset by its target's name in `PENGUINS_TARGETS`.
DEPLOYMENT_ASSETS = {
    "local": local_endpoint.key,
    "sagemaker": sagemaker_endpoint.key,
    "azure": azure_endpoint.key,
}
