"""Deployment stage: registered versions served by endpoints, each verified by the same checks.

Every deployment asset deploys one registered version (the champion unless a version is
given, which is how a rollback is launched), smoke-tests it with rows of the data, and
reports three blocking checks. When a check fails, the target is put back on the version it
served before, the checks show why, and the run fails.
"""

import math
from typing import Any

import dagster as dg
from pydantic import Field

from penguins_platform import metadata
from penguins_platform.assets.registry import CHAMPION_ALIAS, registered_model_version
from penguins_platform.ml import schema
from penguins_platform.resources.local_endpoint import LocalEndpoint, inference_dir
from penguins_platform.resources.mlflow import MlflowTracking

GROUP = "deployment"
DEPLOYMENT_CHECKS = {
    "serves_expected_version": "The endpoint serves the version this run deployed, not a stale "
    "or half-deployed one.",
    "smoke_predictions_valid": "Rows of the data each get a species and a probability.",
    "latency_under_bound": "Single-row requests answer within the configured p99 bound.",
}


class DeploymentConfig(dg.Config):
    alias: str = Field(default=CHAMPION_ALIAS, description="Deploy the version this alias names.")
    version: str | None = Field(
        default=None, description="Deploy this version instead of the alias (a rollback)."
    )
    smoke_rows: int = Field(default=5, ge=1, description="Rows from the data sent as a smoke test.")
    latency_requests: int = Field(
        default=20, ge=1, description="Single-row requests timed after the smoke test."
    )
    latency_bound_ms: float = Field(
        default=250.0, gt=0, description="p99 single-row latency above which the check fails."
    )


class CloudDeploymentConfig(DeploymentConfig):
    latency_bound_ms: float = Field(
        default=2000.0, gt=0, description="p99 single-row latency above which the check fails."
    )


def deployment_check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)
        for name, description in DEPLOYMENT_CHECKS.items()
    ]


def deployment_check_results(
    expected_version: str,
    served_version: str | None,
    smoke: Any,
    latency_bound_ms: float,
    deploy_error: str | None = None,
) -> list[dg.AssetCheckResult]:
    """The three deployment checks, from what the deployment and its smoke test saw."""
    if deploy_error is not None:
        skipped = f"not run: the deployment failed ({deploy_error})"
        return [
            dg.AssetCheckResult(
                check_name="serves_expected_version",
                passed=False,
                description=f"version {expected_version} was not deployed: {deploy_error}; "
                f"version {served_version} serves",
                metadata={"expected": expected_version, "served": str(served_version)},
            ),
            dg.AssetCheckResult(
                check_name="smoke_predictions_valid", passed=False, description=skipped
            ),
            dg.AssetCheckResult(
                check_name="latency_under_bound", passed=False, description=skipped
            ),
        ]
    p99 = smoke.latency_p99_ms
    return [
        dg.AssetCheckResult(
            check_name="serves_expected_version",
            passed=served_version == expected_version,
            description=f"serves version {served_version}, expected {expected_version}",
            metadata={"expected": expected_version, "served": str(served_version)},
        ),
        dg.AssetCheckResult(
            check_name="smoke_predictions_valid",
            passed=smoke.valid,
            description=smoke.error or f"{len(smoke.answers)} rows got a species and a probability",
        ),
        dg.AssetCheckResult(
            check_name="latency_under_bound",
            passed=smoke.valid and not math.isnan(p99) and p99 <= latency_bound_ms,
            description=f"p99 {p99:.1f} ms against a bound of {latency_bound_ms:.0f} ms",
            metadata={"latency_p99_ms": p99, "latency_bound_ms": latency_bound_ms},
        ),
    ]


def smoke_records(penguins: Any, rows: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The first `rows` cleaned penguins as JSON records (null for missing), and their species."""
    sample = penguins.head(rows)
    records = [
        {k: (None if v is None or v != v else v) for k, v in row.items()}
        for row in sample[list(schema.FEATURES)].to_dict(orient="records")
    ]
    return records, [str(s) for s in sample[schema.TARGET]]


def smoke_metadata(records: list[dict], species: list[str], smoke: Any) -> dict[str, Any]:
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


@dg.asset(
    group_name=GROUP,
    deps=[registered_model_version],
    kinds={"python"},
    check_specs=deployment_check_specs("local_endpoint"),
)
def local_endpoint(
    context: dg.AssetExecutionContext,
    config: DeploymentConfig,
    penguins,
    mlflow: MlflowTracking,
    endpoint: LocalEndpoint,
) -> dg.MaterializeResult:
    """The registered version (champion by default) answering on a local HTTP server.

    The server is a service, not a step: it outlives the run. A new version is loaded beside
    the old one and swapped in only after it passes the server's own check, so no request
    fails during a redeploy. If a deployment check fails, the previous version is swapped back.
    """
    from penguins_platform.serving.service import EndpointError
    from penguins_platform.serving.smoke import SmokeResult, http_invoker, smoke_test

    version = str(mlflow.resolve_version(config.alias, config.version).version)
    downloaded = mlflow.download_model(version, endpoint.paths.models_dir)
    records, species = smoke_records(penguins, config.smoke_rows)
    try:
        deployment = endpoint.deploy(inference_dir(downloaded), version)
    except EndpointError as error:
        context.log.error(f"version {version} was not deployed: {error}")
        served = endpoint.served_version()
        checks = deployment_check_results(
            version, served, SmokeResult(), config.latency_bound_ms, deploy_error=str(error)
        )
        return dg.MaterializeResult(
            metadata={"url": dg.MetadataValue.url(endpoint.url), "serving_version": str(served),
                      "attempted_version": version, "error": str(error)},
            check_results=checks,
        )  # fmt: skip
    context.log.info(f"{deployment.action} version {version} at {endpoint.url}")
    smoke = smoke_test(http_invoker(endpoint.url), records, config.latency_requests)
    checks = deployment_check_results(
        version, endpoint.served_version(), smoke, config.latency_bound_ms
    )
    if not all(check.passed for check in checks):
        endpoint.rollback(deployment)
        context.log.error(
            f"version {version} failed its deployment checks; "
            f"now serving {endpoint.served_version() or 'nothing'}"
        )
    serving = endpoint.served_version()
    return dg.MaterializeResult(
        metadata={
            "url": dg.MetadataValue.url(endpoint.url),
            "serving_version": str(serving),
            "attempted_version": version,
            "action": deployment.action,
            "previous_version": deployment.previous_version or "",
            "pid": deployment.pid or 0,
            "log": dg.MetadataValue.path(str(endpoint.paths.log_file)),
            "capture": endpoint.resolved_capture_uri() or "off",
            **smoke_metadata(records, species, smoke),
        },
        check_results=checks,
    )
