"""Sensors: a new champion deploys itself to every enabled target, once per promotion; and
monitoring that finds production worse than training requests retraining, at most once per
cool-down."""

import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

from penguins_platform import defaults
from penguins_platform.defs.deployment import DEPLOYMENT_ASSETS
from penguins_platform.defs.jobs import (
    MONITORING_RUN_TAG,
    RETRAINING_REASON_TAG,
    RETRAINING_TAG,
    deployment_job,
    training_job,
)
from penguins_platform.defs.registry import PROMOTION_TAG
from penguins_platform.defs.resources import (
    AzureMLEndpoint,
    LocalEndpoint,
    MlflowTracking,
    SageMakerEndpoint,
    target_status,
)
from penguins_platform.defs.schedules import AUTOMATION
from penguins_platform.deploy.selection import TargetStatus, describe_selection
from penguins_platform.settings import AutomationSettings, variable
from penguins_platform.tracking import credentials
from penguins_platform.tracking.contract import PROMOTION_KIND_TAG

if TYPE_CHECKING:
    from penguins_platform.defs.event_log import CheckEvaluation


@dataclass(frozen=True)
class DeploymentCursor:
    """The champion the sensor last requested a deployment of: its version and promotion."""

    model: str = ""
    deployed: str = ""  # promotion.deployment_key of that champion

    @classmethod
    def read(cls, cursor: str | None) -> "DeploymentCursor":
        if not cursor:
            return cls()
        values = json.loads(cursor)
        if "last_version" in values:  # the cursor of releases that deployed every new version
            return cls(values.get("model", ""), f"v{values['last_version']}")
        return cls(**values)

    def write(self) -> str:
        return json.dumps(asdict(self))


def not_deployable(statuses: list[TargetStatus]) -> str | None:
    """Why nothing should be deployed now, or None: a target that `PENGUINS_TARGETS` names
    cannot deploy (a run would fail on it), or no target is enabled (a run would do nothing).
    The sensor then skips and keeps its cursor, so the champion deploys once that is fixed."""
    unmet = [status.reason for status in statuses if status.unmet]
    if unmet:
        return "; ".join(unmet)
    if not any(status.enabled for status in statuses):
        reasons = "; ".join(f"{status.name}: {status.reason}" for status in statuses)
        return f"no deployment target is enabled ({reasons})"
    return None


@dg.sensor(
    job=deployment_job,
    minimum_interval_seconds=AUTOMATION.sensor_interval,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Follows the registry's champion alias and deploys each new champion to every enabled "
        f"target ({describe_selection()}). A challenger that did not beat the champion is never "
        "deployed. The run key is the version and its promotion, so a promotion is deployed "
        "once, and a rollback (a new promotion of an older version) is deployed again."
    ),
)
def champion_sensor(
    context: dg.SensorEvaluationContext,
    mlflow: MlflowTracking,
    local: LocalEndpoint,
    sagemaker: SageMakerEndpoint,
    azure: AzureMLEndpoint,
) -> dg.SensorResult | dg.SkipReason:
    from penguins_platform.tracking import promotion

    name = mlflow.registered_model_name
    cursor = DeploymentCursor.read(context.cursor)
    last = cursor.deployed or "nothing yet"
    try:
        mlflow.ensure_reachable()
        current = promotion.champion(mlflow.client(), name)
    except Exception as error:  # MLflow down or erroring: skip this tick, keep the cursor
        reason = credentials.scrub(str(error), mlflow.uri)
        return dg.SkipReason(
            f"MLflow at {mlflow.display_uri} is unreachable ({reason}); will retry next tick; "
            f"last deployed: {last}"
        )
    if current is None:
        return dg.SkipReason(f"{name!r} has no champion yet: run `make train`")
    key = promotion.deployment_key(current)
    if key == cursor.deployed and cursor.model == name:
        return dg.SkipReason(
            f"the champion, version {current.version} of {name!r}, is already deployed ({key})"
        )
    version = str(current.version)
    statuses = [target_status(resource) for resource in (local, sagemaker, azure)]
    blocked = not_deployable(statuses)
    if blocked is not None:
        return dg.SkipReason(
            f"the champion, version {version} of {name!r}, is not deployed: {blocked}; "
            f"last deployed: {last}"
        )
    tags = current.tags or {}
    targets = [DEPLOYMENT_ASSETS[status.name] for status in statuses if status.enabled]
    context.log.info(
        f"deploying champion version {version} of {name!r} to "
        f"{', '.join(target.to_user_string() for target in targets)} "
        f"({tags.get(PROMOTION_KIND_TAG, 'promotion not recorded')}; was {last})"
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{name}-{key}",
                asset_selection=targets,
                run_config={
                    "ops": {
                        target.to_user_string(): {"config": {"version": version}}
                        for target in targets
                    }
                },
                tags={
                    "penguins/model_version": version,
                    **(
                        {PROMOTION_TAG: tags[PROMOTION_KIND_TAG]}
                        if PROMOTION_KIND_TAG in tags
                        else {}
                    ),
                },
            )
        ],
        cursor=DeploymentCursor(name, key).write(),
    )


ACCURACY_CHECK = dg.AssetCheckKey(dg.AssetKey("monitoring_report"), "production_accuracy")
DRIFT_CHECK = dg.AssetCheckKey(dg.AssetKey("monitoring_report"), "feature_drift")


@dataclass(frozen=True)
class RetrainingCursor:
    """The newest check evaluation already judged, and when retraining was last requested."""

    last_evaluation: int = 0
    last_request_at: float | None = None

    @classmethod
    def read(cls, cursor: str | None) -> "RetrainingCursor":
        return cls(**json.loads(cursor)) if cursor else cls()

    def write(self) -> str:
        return json.dumps(asdict(self))


def retraining_reason(
    accuracy: "list[CheckEvaluation]",
    drift: "list[CheckEvaluation]",
    persistence: int,
) -> tuple[str, str] | None:
    """Why to retrain, and the monitoring run that showed it; None when nothing calls for it.

    `accuracy` and `drift` are the newest evaluations, newest first. A failed production
    accuracy asks at once; drift only once it failed `persistence` evaluations in a row, since
    one drifted batch may be a blip.
    """
    if accuracy and not accuracy[0].passed:
        return f"production_accuracy failed: {accuracy[0].description}", accuracy[0].run_id
    recent = drift[:persistence]
    if len(recent) == persistence and not any(e.passed for e in recent):
        return (
            f"feature_drift failed in the last {persistence} evaluations: {recent[0].description}",
            recent[0].run_id,
        )
    return None


def last_retraining_request(instance: dg.DagsterInstance) -> float | None:
    """When the newest retraining run was created, from the runs themselves, so a reset
    cursor cannot skip the cool-down."""
    records = instance.get_run_records(dg.RunsFilter(tags={RETRAINING_TAG: "requested"}), limit=1)
    return records[0].create_timestamp.timestamp() if records else None


@dg.sensor(
    job=training_job,
    minimum_interval_seconds=defaults.RETRAINING_SENSOR_INTERVAL_SECONDS,
    default_status=(
        dg.DefaultSensorStatus.RUNNING if AUTOMATION.schedules else dg.DefaultSensorStatus.STOPPED
    ),
    description=(
        "Requests retraining when production_accuracy fails, or when feature_drift fails in "
        f"{AUTOMATION.drift_persistence} evaluations in a row "
        f"({variable(AutomationSettings, 'drift_persistence')}); at most once per "
        f"{AUTOMATION.retraining_cooldown_hours:g} h "
        f"({variable(AutomationSettings, 'retraining_cooldown_hours')}). The new model is "
        "gated by the training checks and must beat the champion, then the champion sensor "
        "deploys it. Stopped unless "
        f"{variable(AutomationSettings, 'schedules')}=on."
    ),
)
def retraining_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    from penguins_platform.defs import event_log

    cursor = RetrainingCursor.read(context.cursor)
    limit = AUTOMATION.drift_persistence  # at least 1, the setting says
    accuracy = event_log.check_history(context.instance, ACCURACY_CHECK, 1)
    drift = event_log.check_history(context.instance, DRIFT_CHECK, limit)
    newest = max((e.storage_id for e in accuracy[:1] + drift[:1]), default=0)
    if newest <= cursor.last_evaluation:
        return dg.SkipReason("no monitoring evaluation since the last tick")
    judged = replace(cursor, last_evaluation=newest)
    found = retraining_reason(
        [e for e in accuracy if e.storage_id > cursor.last_evaluation], drift, limit
    )
    if found is None:
        return dg.SensorResult(
            skip_reason="production passes its checks; no retraining needed",
            cursor=judged.write(),
        )
    reason, monitoring_run = found
    now = time.time()
    requests = [t for t in (cursor.last_request_at, last_retraining_request(context.instance)) if t]
    last = max(requests, default=None)
    cooldown = AUTOMATION.retraining_cooldown_hours * 3600
    if last is not None and now - last < cooldown:
        until = datetime.fromtimestamp(last + cooldown, UTC).isoformat(timespec="seconds")
        return dg.SensorResult(
            skip_reason=f"{reason}; but retraining was requested "
            f"{(now - last) / 3600:.1f} h ago, so not again before {until} (cool-down)",
            cursor=judged.write(),
        )
    context.log.info(f"requesting retraining: {reason}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"retrain-after-{newest}",
                tags={
                    RETRAINING_TAG: "requested",
                    RETRAINING_REASON_TAG: reason[:200],
                    MONITORING_RUN_TAG: monitoring_run,
                },
            )
        ],
        cursor=replace(judged, last_request_at=now).write(),
    )
