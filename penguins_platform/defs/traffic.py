"""The traffic job: sampled penguins sent to an endpoint from the UI, as `make traffic` does.

Monitoring has nothing to watch until an endpoint has answered requests. This job gives a
demo (or a staging endpoint) realistic traffic without leaving the UI; its config is the
command's flags.
"""

from typing import Literal

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs.resources import (
    LocalEndpoint,
    MlflowTracking,
    SageMakerEndpoint,
    target_status,
)


class TrafficConfig(dg.Config):
    requests: int = Field(default=defaults.TRAFFIC_REQUESTS, ge=1, description="Records to send.")
    batch_size: int = Field(
        default=defaults.TRAFFIC_BATCH_SIZE, ge=1, description="Records per request."
    )
    drift: bool = Field(
        default=False, description="Add noise to body_mass_g, so monitoring sees drift."
    )
    seed: int = Field(default=defaults.SEED, description="Seed of the draw.")
    target: Literal["local", "sagemaker"] = Field(
        default="local", description="The endpoint to send to."
    )


@dg.op(tags={"kind": "python"})
def send_sample_traffic(
    context: dg.OpExecutionContext,
    config: TrafficConfig,
    local: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    mlflow: MlflowTracking,
) -> dg.Output:
    """Send `requests` penguins drawn from the shipped data, `batch_size` per request."""
    from penguins_platform.traffic import (
        DRIFT_FEATURE,
        sample_records,
        send_traffic,
        shipped_penguins,
    )

    resource: LocalEndpoint | SageMakerEndpoint = (
        sagemaker if config.target == "sagemaker" else local
    )
    status = target_status(resource)
    if not status.enabled:
        raise dg.Failure(f"the {config.target} target is not enabled here: {status.reason}")
    target = resource.target(mlflow.registered_model_name, context.log)
    records = sample_records(
        shipped_penguins(), config.requests, drift=config.drift, seed=config.seed
    )

    def progress(sent: int, total: int) -> None:
        context.log.debug(f"{sent} of {total} rows sent")

    result = send_traffic(target.invoke, records, config.batch_size, progress)
    summary = result.summary(f"the {target.label}")
    summary += f" (drift on {DRIFT_FEATURE}: {'on' if config.drift else 'off'})"
    if result.failed_requests:
        raise dg.Failure(summary, metadata={"errors": dg.MetadataValue.json(result.errors)})
    context.log.info(summary)
    return dg.Output(
        result.answered,
        metadata={"sent": result.sent, "answered": result.answered, "requests": result.requests},
    )


@dg.job(
    description="Send sampled penguins to the local endpoint (or SageMaker) as production "
    "traffic, so monitoring has rows to evaluate; `drift` adds noise to body_mass_g.",
    tags={"dagster/max_runtime": str(defaults.MONITORING_MAX_RUNTIME_SECONDS)},
)
def traffic_job() -> None:
    send_sample_traffic()
