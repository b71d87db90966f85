"""Sensors: a new registered version deploys itself to every enabled target, once."""

import json
import os

import dagster as dg

from penguins_platform import defaults
from penguins_platform.defs.deployment import azure_endpoint, local_endpoint, sagemaker_endpoint
from penguins_platform.defs.jobs import deployment_job
from penguins_platform.defs.resources import AzureMLEndpoint, MlflowTracking, SageMakerEndpoint
from penguins_platform.tracking import credentials

SENSOR_INTERVAL_SECONDS = int(
    os.environ.get("PENGUINS_SENSOR_INTERVAL", defaults.SENSOR_INTERVAL_SECONDS)
)


def read_cursor(cursor: str | None) -> int:
    """The last version the sensor requested a deployment for; 0 before the first."""
    return int(json.loads(cursor)["last_version"]) if cursor else 0


def write_cursor(model: str, version: int) -> str:
    return json.dumps({"model": model, "last_version": version})


def enabled_targets(sagemaker: SageMakerEndpoint, azure: AzureMLEndpoint) -> list[dg.AssetKey]:
    """The local endpoint always; a cloud target only once it is configured."""
    targets = [local_endpoint.key]
    if sagemaker.enabled:
        targets.append(sagemaker_endpoint.key)
    if azure.enabled:
        targets.append(azure_endpoint.key)
    return targets


@dg.sensor(
    job=deployment_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Polls the MLflow registry and deploys each new version that passed the blocking checks "
        "(tagged checks_passed, or the champion) to every enabled target. The run key is the "
        "version, so no version is ever deployed twice; of several new versions, only the newest."
    ),
)
def new_model_version_sensor(
    context: dg.SensorEvaluationContext,
    mlflow: MlflowTracking,
    sagemaker: SageMakerEndpoint,
    azure: AzureMLEndpoint,
) -> dg.SensorResult | dg.SkipReason:
    name = mlflow.registered_model_name
    last = read_cursor(context.cursor)
    try:
        mlflow.ensure_reachable()
        versions = mlflow.qualified_versions()
    except Exception as error:  # MLflow down or erroring: skip this tick, keep the cursor
        reason = credentials.scrub(str(error), mlflow.uri)
        return dg.SkipReason(
            f"MLflow at {mlflow.display_uri} is unreachable ({reason}); will retry next tick, "
            f"still after version {last}"
        )
    new = [v for v in versions if v > last]
    if not new:
        return dg.SkipReason(f"no new qualifying version of {name!r} after version {last}")
    newest, superseded = new[-1], new[:-1]
    if superseded:
        context.log.info(
            f"versions {', '.join(map(str, superseded))} of {name!r} were superseded by "
            f"{newest} before they were deployed; deploying only {newest}"
        )
    targets = enabled_targets(sagemaker, azure)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{name}-v{newest}",
                asset_selection=targets,
                run_config={
                    "ops": {
                        key.to_user_string(): {"config": {"version": str(newest)}}
                        for key in targets
                    }
                },
                tags={
                    "penguins/model_version": str(newest),
                    **(
                        {"penguins/superseded": ",".join(map(str, superseded))}
                        if superseded
                        else {}
                    ),
                },
            )
        ],
        cursor=write_cursor(name, newest),
    )
