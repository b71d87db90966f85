"""Registry stage: the trained model as a new version (the challenger), the gate it must pass,
and the champion that the deployment sensor serves.

`registered_model_version` registers every model that passed the training checks, as the
`challenger`, with what trained it. `beats_champion` scores the challenger and the champion on
the same holdout rows and blocks unless the challenger wins by the margin. `champion` then
moves the champion alias, or, launched by hand with a version, promotes that version (a
rollback when it is older), recording who asked and why.
"""

import contextlib
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs.data import raw_penguins
from penguins_platform.defs.resources import MlflowTracking
from penguins_platform.defs.training import GROUP, accuracy_threshold
from penguins_platform.tracking.contract import (
    CHALLENGER_ALIAS,
    CHECKS_PASSED_TAG,
    DAGSTER_RUN_TAG,
    GATE_TAG,
    HOLDOUT_SHARE_TAG,
    PROMOTION_ID_TAG,
    TRAINING_DIGEST_TAG,
)
from penguins_platform.tracking.promotion import Metric

# Run tags a promotion leaves, so the UI's run list says whether the champion changed.
CHAMPION_CHANGED_TAG = "penguins/champion_changed"
PROMOTION_TAG = "penguins/promotion"
REQUESTED_BY_TAG = "penguins/requested_by"
REASON_TAG = "penguins/reason"


class RegistrationConfig(dg.Config):
    example_rows: int = Field(
        default=defaults.EXAMPLE_ROWS, ge=1, description="Rows logged as the input example."
    )


class ChallengerGateConfig(dg.Config):
    metric: Metric = Field(
        default=defaults.PROMOTION_METRIC,
        description="MLflow classifier metric the challenger and the champion are compared on.",
    )
    margin: float = Field(
        default=defaults.PROMOTION_MARGIN,
        gt=0.0,
        le=1.0,
        description="How much higher the challenger's metric must be than the champion's on "
        "the same holdout rows (MLflow's min_absolute_change; positive, so a tie keeps the "
        "champion).",
    )


class ChampionConfig(dg.Config):
    version: str | None = Field(
        default=None,
        description="Promote this version by hand (a rollback when it is older than the "
        "champion). Unset: promote the newest registered version, which must have passed "
        "beats_champion.",
    )
    reason: str = Field(default="", description="Why, for a promotion by hand (required).")
    requested_by: str = Field(
        default="", description="Who asked, for a promotion by hand (required)."
    )


class GateError(RuntimeError):
    """A step would act on a model that has not passed the check that guards it."""


def require_passed(
    instance: dg.DagsterInstance, check: dg.AssetCheckKey, action: str
) -> dict[str, object]:
    """The passing evaluation of `check` on the latest materialization of its asset, or raise.

    A blocking check only stops downstream steps in its own run. Reading the outcome here
    closes the gap: a run that materializes the downstream asset alone cannot act on a model
    that failed, or never ran, its check.
    """
    from penguins_platform.defs import event_log

    asset, name = check.asset_key.to_user_string(), check.name
    outcome = event_log.latest_check_outcome(instance, check)
    latest = event_log.latest_materialization_id(instance, check.asset_key)
    if latest is None or outcome is None:
        raise GateError(
            f"{asset} has no {name} result; materialize {asset} with its check before {action}"
        )
    if outcome.materialization_id != latest:
        raise GateError(
            f"the latest {asset} has not been checked by {name}; materialize {asset} with its "
            f"check before {action}"
        )
    if not outcome.passed:
        raise GateError(
            f"{asset} failed {name} in run {outcome.run_id}: {outcome.description}; "
            f"it will not be {action.removesuffix('ing')}ed"
        )
    return outcome.metadata


def require_passed_gate(instance: dg.DagsterInstance) -> dict[str, object]:
    """The passing `accuracy_threshold` evaluation of the latest `trained_model`, or raise."""
    return require_passed(instance, accuracy_threshold.check_key, "registering")


@dg.asset(group_name=GROUP, kinds={"mlflow"})
def registered_model_version(
    context: dg.AssetExecutionContext,
    config: RegistrationConfig,
    penguins,
    feature_transformer,
    trained_model,
    cross_validation_scores,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """A new version of the registered model, as the challenger.

    The version is an MLflow pyfunc: the `.keras` network, the fitted transformers, the
    serving code, a signature, an input example and pinned requirements. Its run records the
    training rows and the holdout rows as dataset inputs and Parquet files; its tags say which
    Dagster run and data version produced it and how it scored. It serves only once it is the
    champion.
    """
    from penguins_platform.defs import event_log
    from penguins_platform.ml import holdout, packaging, schema
    from penguins_platform.tracking.promotion import log_training_data

    gate = require_passed_gate(context.instance)
    data_version = event_log.latest_data_version(context.instance, raw_penguins.key) or "unknown"
    split = holdout.split(penguins, defaults.HOLDOUT_SHARE)
    name = mlflow.registered_model_name
    example = penguins[list(schema.FEATURES)].head(config.example_rows).reset_index(drop=True)

    with mlflow.parent_run(context) as run_id:
        digests = log_training_data(
            run_id, split.training, split.holdout, data_version, schema.TARGET
        )
        tags = {
            DAGSTER_RUN_TAG: context.run.run_id,
            "data_version": data_version,
            TRAINING_DIGEST_TAG: digests["training"],
            HOLDOUT_SHARE_TAG: f"{defaults.HOLDOUT_SHARE:g}",
            "training_rows": str(len(split.training)),
            "holdout_rows": str(len(split.holdout)),
            "cv_accuracy_mean": f"{cross_validation_scores.accuracy_mean:.6f}",
            "cv_accuracy_std": f"{cross_validation_scores.accuracy_std:.6f}",
            "cv_loss_mean": f"{cross_validation_scores.loss_mean:.6f}",
            "accuracy_threshold": f"{gate.get('threshold', float('nan')):.4f}",
            CHECKS_PASSED_TAG: "true",
        }
        version = packaging.log_pyfunc_model(
            run_id, trained_model, feature_transformer, example, name
        )
        packaging.publish_version(mlflow.client(), name, version, tags, CHALLENGER_ALIAS)
        mlflow.client().set_tag(run_id, "registered_model_version", version)

    model_uri = f"models:/{name}/{version}"
    context.log.info(
        f"registered {model_uri} as the {CHALLENGER_ALIAS} with cross-validated accuracy "
        f"{cross_validation_scores.accuracy_mean:.4f}"
    )
    return dg.MaterializeResult(
        value=version,
        metadata={
            "version": int(version),
            "model_uri": model_uri,
            "alias": CHALLENGER_ALIAS,
            "data_version": data_version,
            "training_rows": len(split.training),
            "holdout_rows": len(split.holdout),
            "training_data_digest": digests["training"],
            "cv_accuracy_mean": cross_validation_scores.accuracy_mean,
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(run_id)),
            "mlflow_model_version": dg.MetadataValue.url(mlflow.model_version_url(version)),
            "tags": dg.MetadataValue.json(tags),
        },
    )


@dg.asset_check(
    asset=registered_model_version,
    blocking=True,
    additional_ins={"penguins": dg.AssetIn()},
)
def beats_champion(
    context: dg.AssetCheckExecutionContext,
    config: ChallengerGateConfig,
    registered_model_version,
    penguins,
    mlflow: MlflowTracking,
) -> dg.AssetCheckResult:
    """The challenger serves only if it beats the champion on rows neither trained on.

    Both registered models predict the holdout of the challenger's data, MLflow evaluates
    both, and MLflow's `validate_evaluation_results` decides with the margin. Blocking: a
    challenger that loses stays registered, tagged with why, and `champion` does not move.
    """
    from penguins_platform.ml import holdout, schema
    from penguins_platform.tracking import promotion

    version = str(registered_model_version)
    name = mlflow.registered_model_name
    client = mlflow.client()
    current = promotion.champion(client, name)
    parent = mlflow.parent_run_id(context.run.run_id, context.op_execution_context.job_name)

    @contextlib.contextmanager
    def evaluation_run(run_name: str) -> Iterator[str]:
        """A run nested in this training run's, for one model's evaluation."""
        with mlflow.running(mlflow.nested_run(parent, run_name)) as run_id:
            yield run_id

    decision = promotion.challenge(
        name,
        version,
        str(current.version) if current is not None else None,
        holdout.split(penguins, defaults.HOLDOUT_SHARE).holdout,
        schema.TARGET,
        config.metric,
        config.margin,
        evaluation_run,
    )
    client.set_model_version_tag(name, version, GATE_TAG, decision.tag())
    if not decision.passed:
        context.instance.add_run_tags(context.run.run_id, {CHAMPION_CHANGED_TAG: "false"})
        context.log.warning(
            f"version {version} stays the challenger and will not be deployed: "
            f"{decision.description}"
        )
    links = {"challenger_evaluation": decision.challenger.run_id}
    if decision.champion is not None:
        links["champion_evaluation"] = decision.champion.run_id
    return dg.AssetCheckResult(
        passed=decision.passed,
        description=decision.description,
        metadata={
            **decision.numbers(),
            **{key: dg.MetadataValue.url(mlflow.run_url(run)) for key, run in links.items()},
        },
    )


@dg.asset(group_name=GROUP, kinds={"mlflow"}, deps=[registered_model_version])
def champion(
    context: dg.AssetExecutionContext, config: ChampionConfig, mlflow: MlflowTracking
) -> dg.MaterializeResult:
    """The version that serves: the champion alias, which the deployment sensor follows.

    In a training run it moves to the new version once that version passed `beats_champion`.
    Launched by hand with a `version` (`make promote`), it moves to that version, a rollback
    when it is older, and records who asked and why.
    """
    from penguins_platform.defs import event_log
    from penguins_platform.tracking import promotion

    name = mlflow.registered_model_name
    client = mlflow.client()
    current = promotion.champion(client, name)
    previous = str(current.version) if current is not None else None
    if config.version is None:
        require_passed(context.instance, beats_champion.check_key, "promoting")
        registered = event_log.latest_materialization_metadata(
            context.instance, registered_model_version.key
        )
        version = str(registered["version"])
        kind: promotion.PromotionKind = "first" if previous is None else "automatic"
        reason = "beat the champion on the holdout" if previous else "the first version"
        requested_by = f"dagster run {context.run.run_id}"
    else:
        version = config.version
        if not config.reason.strip() or not config.requested_by.strip():
            raise promotion.PromotionError(
                "a promotion by hand must say who asked and why: set `requested_by` and "
                "`reason` in the champion asset's config (`make promote` sets both)"
            )
        promotion.require_promotable(client, name, version)
        kind = "rollback" if previous is not None and int(version) < int(previous) else "manual"
        reason, requested_by = config.reason.strip(), config.requested_by.strip()
    changed = version != previous
    if changed:
        promotion.promote(
            client, name, version, promotion.Promotion(kind, reason, requested_by, previous)
        )
        context.log.info(
            f"version {version} of {name!r} is the champion ({kind}; was "
            f"{previous or 'none'}): {reason}"
        )
    else:
        context.log.info(f"version {version} of {name!r} is already the champion; unchanged")
    context.instance.add_run_tags(
        context.run.run_id,
        {CHAMPION_CHANGED_TAG: "true" if changed else "false", PROMOTION_TAG: kind},
    )
    tags = client.get_model_version(name, version).tags or {}
    return dg.MaterializeResult(
        metadata={
            "champion_version": int(version),
            "previous_champion": previous or "none",
            "champion_changed": changed,
            "promotion": kind,
            "reason": reason,
            "requested_by": requested_by,
            "promotion_id": str(tags.get(PROMOTION_ID_TAG, "")),
            "challenger_gate": str(tags.get(GATE_TAG, "not judged")),
            "mlflow_model_version": dg.MetadataValue.url(mlflow.model_version_url(version)),
        },
    )
