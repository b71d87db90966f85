"""Deployment stage: registered versions served by endpoints, starting with the local one."""

from typing import Any

import dagster as dg
from pydantic import Field

from penguins_platform import metadata
from penguins_platform.assets.registry import CHAMPION_ALIAS, registered_model_version
from penguins_platform.ml import schema
from penguins_platform.resources.local_endpoint import LocalEndpoint, inference_dir
from penguins_platform.resources.mlflow import MlflowTracking

GROUP = "deployment"


class DeploymentConfig(dg.Config):
    alias: str = Field(default=CHAMPION_ALIAS, description="Deploy the version this alias names.")
    version: str | None = Field(
        default=None, description="Deploy this version instead of the alias (a rollback)."
    )
    smoke_rows: int = Field(default=5, ge=1, description="Rows from the data sent as a smoke test.")
    latency_requests: int = Field(
        default=20, ge=1, description="Single-row requests timed after the smoke test."
    )


def smoke_records(penguins: Any, rows: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The first `rows` cleaned penguins as JSON records (null for missing), and their species."""
    sample = penguins.head(rows)
    records = [
        {k: (None if v is None or v != v else v) for k, v in row.items()}
        for row in sample[list(schema.FEATURES)].to_dict(orient="records")
    ]
    return records, [str(s) for s in sample[schema.TARGET]]


@dg.asset(group_name=GROUP, deps=[registered_model_version], kinds={"python"})
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
    fails during a redeploy. If the version then fails this asset's smoke test, the previous
    one is swapped back and the asset fails with the reason.
    """
    from penguins_platform.serving.smoke import SmokeTestError, smoke_test_http

    model_version = mlflow.resolve_version(config.alias, config.version)
    version = str(model_version.version)
    downloaded = mlflow.download_model(version, endpoint.paths.models_dir)
    deployment = endpoint.deploy(inference_dir(downloaded), version)
    context.log.info(f"{deployment.action} version {version} at {endpoint.url}")
    records, species = smoke_records(penguins, config.smoke_rows)
    try:
        smoke = smoke_test_http(endpoint.url, records, version, config.latency_requests)
    except SmokeTestError as error:
        endpoint.rollback(deployment)
        raise SmokeTestError(
            f"version {version} failed its smoke test at {endpoint.url}: {error}; "
            + (f"version {deployment.previous_version} serves again" if deployment.previous_version
               else "the endpoint was stopped")
        ) from error  # fmt: skip
    correct = sum(a["prediction"] == s for a, s in zip(smoke.answers, species, strict=True))
    return dg.MaterializeResult(
        value={"url": endpoint.url, "version": version},
        metadata={
            "url": dg.MetadataValue.url(endpoint.url),
            "version": int(version),
            "action": deployment.action,
            "previous_version": deployment.previous_version or "",
            "pid": deployment.pid or 0,
            "log": dg.MetadataValue.path(str(endpoint.paths.log_file)),
            "capture": endpoint.resolved_capture_uri() or "off",
            "smoke_predictions": metadata.key_value_table(
                [
                    {
                        **r,
                        "species": s,
                        "prediction": a["prediction"],
                        "confidence": a["confidence"],
                    }
                    for r, s, a in zip(records, species, smoke.answers, strict=True)
                ],
                [(name, "string") for name in schema.FEATURES]
                + [("species", "string"), ("prediction", "string"), ("confidence", "float")],
            ),
            "smoke_accuracy": correct / len(species),
            "latency_p50_ms": smoke.latency_p50_ms,
            "latency_p99_ms": smoke.latency_p99_ms,
        },
    )
