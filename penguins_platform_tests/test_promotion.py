"""The challenger gate and promotions, through the real lineage against a real MLflow store:
a weak first version is promoted (nothing to beat), a better one replaces it, a worse one is
registered but never promoted; then promotions by hand, a rollback, and what each leaves."""

from dataclasses import dataclass

import dagster as dg
import pandas as pd
import pytest

from penguins_platform import defaults
from penguins_platform.defs.registry import CHAMPION_CHANGED_TAG, GateError
from penguins_platform.defs.sensors import champion_sensor
from penguins_platform.ml import holdout
from penguins_platform.ml.cleaning import clean_penguins
from penguins_platform.tracking import promotion
from penguins_platform.tracking.contract import (
    CHALLENGER_ALIAS,
    GATE_TAG,
    PREVIOUS_CHAMPION_TAG,
    PROMOTED_BY_TAG,
    PROMOTION_KIND_TAG,
    PROMOTION_REASON_TAG,
)
from penguins_platform.tracking.store import MlflowStore
from penguins_platform_tests.conftest import (
    DATA_FILE,
    QUICK_TRAINING,
    WEAK_TRAINING,
    definitions_with,
    materialized_assets,
    step_error,
    tracking_resource,
)

MODEL = "penguins-gate"


@dataclass
class Gated:
    instance: dg.DagsterInstance
    tracking: object
    store: MlflowStore
    runs: list[dg.ExecuteInProcessResult]

    def client(self):
        return self.tracking.client()  # type: ignore[attr-defined]

    def version(self, number: int):
        return self.client().get_model_version(MODEL, str(number))

    def champion(self) -> str:
        current = promotion.champion(self.client(), MODEL)
        assert current is not None
        return str(current.version)

    def gate(self, run: int) -> dg.AssetCheckEvaluation:
        [found] = [
            e for e in self.runs[run].get_asset_check_evaluations()
            if e.check_name == "beats_champion"
        ]  # fmt: skip
        return found

    def promote(self, **config) -> dg.ExecuteInProcessResult:
        defs = definitions_with(mlflow=self.tracking)
        return defs.resolve_job_def("promotion_job").execute_in_process(
            run_config={"ops": {"champion": {"config": config}}},
            instance=self.instance,
            raise_on_error=False,
        )


@pytest.fixture(scope="module")
def gated(sqlite_store, train_lineage):
    """v1 weak (the first champion), v2 quick (beats it), v3 weak again (loses to v2)."""
    tracking = tracking_resource(sqlite_store, MODEL)
    with dg.instance_for_test() as instance:
        runs = [
            train_lineage(instance, tracking, **config)
            for config in (WEAK_TRAINING, QUICK_TRAINING, WEAK_TRAINING)
        ]
        yield Gated(instance, tracking, sqlite_store, runs)


def test_the_first_version_is_promoted_with_nothing_to_beat(gated):
    assert gated.runs[0].success
    gate = gated.gate(0)
    assert gate.passed
    assert gate.description.startswith("no champion to beat; version 1 scores accuracy_score")
    assert gated.version(1).tags[PROMOTION_KIND_TAG] == "first"
    assert gated.version(1).tags[PREVIOUS_CHAMPION_TAG] == "none"


def test_a_better_challenger_beats_the_champion_on_the_holdout_and_is_promoted(gated):
    run = gated.runs[1]
    assert run.success
    assert "champion" in materialized_assets(run)
    gate = gated.gate(1)
    metadata = {key: value.value for key, value in gate.metadata.items()}
    assert gate.passed
    assert metadata["challenger_score"] >= metadata["champion_score"] + defaults.PROMOTION_MARGIN
    assert metadata["difference"] == pytest.approx(
        metadata["challenger_score"] - metadata["champion_score"]
    )
    assert (metadata["champion_version"], metadata["challenger_version"]) == (1, 2)
    assert metadata["margin"] == defaults.PROMOTION_MARGIN
    assert metadata["decision"] == "promote"
    assert all(isinstance(metadata[k], float) for k in ("challenger_score", "champion_score"))
    tags = gated.version(2).tags
    assert (tags[PROMOTION_KIND_TAG], tags[PREVIOUS_CHAMPION_TAG]) == ("automatic", "1")
    assert tags[GATE_TAG].startswith("promoted: version 2 beats champion version 1")
    stored = gated.instance.get_run_by_id(run.run_id)
    assert stored is not None and stored.tags[CHAMPION_CHANGED_TAG] == "true"


def test_the_gate_compares_both_models_on_the_same_holdout_rows(gated):
    cleaned = clean_penguins(pd.read_csv(DATA_FILE, dtype=str), seed=defaults.SEED)
    expected = holdout.split(cleaned).holdout
    metadata = {key: value.value for key, value in gated.gate(1).metadata.items()}
    assert metadata["rows_compared"] == len(expected) > 50
    # MLflow's evaluations, one nested run per model, scored the same number of rows.
    client = gated.client()
    [parent] = client.search_runs(
        [client.get_experiment_by_name("penguins-tests").experiment_id],
        filter_string=f"tags.dagster_run_id = '{gated.runs[1].run_id}'",
    )
    nested = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    evaluations = {r.info.run_name: r.data.metrics for r in nested if "-v" in r.info.run_name}
    assert set(evaluations) == {"challenger-v2", "champion-v1"}
    assert {m["example_count"] for m in evaluations.values()} == {len(expected)}
    assert evaluations["challenger-v2"]["accuracy_score"] == metadata["challenger_score"]
    assert evaluations["champion-v1"]["accuracy_score"] == metadata["champion_score"]


def test_a_worse_challenger_is_registered_and_tagged_but_not_promoted(gated):
    run = gated.runs[2]
    assert not run.success, "a blocking check failed"
    assert "registered_model_version" in materialized_assets(run)
    assert "champion" not in materialized_assets(run)
    gate = gated.gate(2)
    assert not gate.passed
    assert gate.description.startswith("version 3 does not beat champion version 2 on ")
    assert gated.champion() == "2"
    version = gated.version(3)
    assert CHALLENGER_ALIAS in version.aliases
    assert version.tags[GATE_TAG].startswith("rejected: version 3 does not beat")
    assert PROMOTION_KIND_TAG not in version.tags
    stored = gated.instance.get_run_by_id(run.run_id)
    assert stored is not None and stored.tags[CHAMPION_CHANGED_TAG] == "false"


def test_the_sensor_deploys_the_champion_and_not_the_newer_challenger(gated):
    from penguins_platform.defs.resources import AzureMLEndpoint, LocalEndpoint, SageMakerEndpoint

    context = dg.build_sensor_context(
        instance=gated.instance,
        resources={
            "mlflow": gated.tracking,
            "local": LocalEndpoint(),
            "sagemaker": SageMakerEndpoint(),
            "azure": AzureMLEndpoint(),
        },
    )
    [request] = champion_sensor.evaluate_tick(context).run_requests or []
    assert request.tags["penguins/model_version"] == "2"


def test_promoting_alone_refuses_the_challenger_that_lost(gated):
    result = gated.promote()
    assert not result.success
    error = step_error(result, "champion").cause
    assert error is not None and error.cls_name == GateError.__name__
    assert "registered_model_version failed beats_champion" in error.message
    assert gated.champion() == "2"


def test_a_promotion_by_hand_must_say_who_and_why_and_name_a_version(gated):
    unexplained = gated.promote(version="3")
    assert not unexplained.success
    assert "must say who asked and why" in step_error(unexplained, "champion").to_string()
    unknown = gated.promote(version="9", reason="test", requested_by="tests")
    assert not unknown.success
    assert (
        "has no version '9'; its versions are 1, 2, 3"
        in step_error(unknown, "champion").to_string()
    )
    assert gated.champion() == "2"


def test_a_manual_promotion_then_a_rollback_are_recorded_and_each_deploys(gated):
    from penguins_platform.defs.resources import AzureMLEndpoint, LocalEndpoint, SageMakerEndpoint

    resources = {"mlflow": gated.tracking, "local": LocalEndpoint(),
                 "sagemaker": SageMakerEndpoint(), "azure": AzureMLEndpoint()}  # fmt: skip

    def deployment_request():
        context = dg.build_sensor_context(instance=gated.instance, resources=resources)
        [request] = champion_sensor.evaluate_tick(context).run_requests or []
        return request

    before = deployment_request()
    manual = gated.promote(version="3", reason="a reviewer's pick", requested_by="ada")
    assert manual.success
    assert gated.champion() == "3"
    tags = gated.version(3).tags
    assert (tags[PROMOTION_KIND_TAG], tags[PROMOTED_BY_TAG]) == ("manual", "ada")
    assert (tags[PROMOTION_REASON_TAG], tags[PREVIOUS_CHAMPION_TAG]) == ("a reviewer's pick", "2")
    promoted = deployment_request()
    assert promoted.tags["penguins/model_version"] == "3"

    back = promotion.previous_champion(gated.client(), MODEL)
    rollback = gated.promote(version=back, reason="3 misbehaves", requested_by="ada")
    assert rollback.success
    assert gated.champion() == "2"
    assert gated.version(2).tags[PROMOTION_KIND_TAG] == "rollback"
    stored = gated.instance.get_run_by_id(rollback.run_id)
    assert stored is not None and stored.tags["penguins/promotion"] == "rollback"
    again = deployment_request()
    assert again.tags["penguins/model_version"] == "2"
    assert len({before.run_key, promoted.run_key, again.run_key}) == 3, (
        "the rollback is a new promotion of version 2, so its deployment is not deduplicated"
    )


def test_each_version_records_the_rows_that_trained_it(gated):
    cleaned = clean_penguins(pd.read_csv(DATA_FILE, dtype=str), seed=defaults.SEED)
    split = holdout.split(cleaned)
    recorded = promotion.training_data(gated.client(), MODEL, "2")
    assert recorded is not None
    pd.testing.assert_frame_equal(recorded, split.training)
    assert not set(split.training.index) & set(split.holdout.index)
    run = gated.client().get_run(gated.version(2).run_id)
    inputs = {
        tag.value: d.dataset
        for d in run.inputs.dataset_inputs
        for tag in d.tags
        if tag.key == "mlflow.data.context"
    }
    assert set(inputs) == {"training", "evaluation"}
    assert gated.version(2).tags["training_data_digest"] == inputs["training"].digest
    assert inputs["training"].name.startswith("penguins-training@")


def test_the_daemons_sensor_deploys_each_champion_and_never_a_worse_challenger(
    instance, mlflow_tracking, train_lineage, dagster_daemon, tmp_path
):
    """`dagster-daemon` ticks the sensor against the registry while the lineage trains: a
    deployment run for each champion, none for the challenger that lost. Runs stay queued (a
    queue limit of 0): what is under test is what the daemon asks to deploy."""
    import time

    import yaml

    from penguins_platform_tests.infra.conftest import wait_for

    home = tmp_path / "home"
    home.mkdir()
    queue = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
             "config": {"max_concurrent_runs": 0}}  # fmt: skip
    config = {"telemetry": {"enabled": False}, "run_coordinator": queue}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    log = tmp_path / "daemon.log"
    daemon = dagster_daemon(
        home, log, mlflow_tracking.tracking_uri, mlflow_tracking.registered_model_name
    )
    name = mlflow_tracking.registered_model_name

    def requested(deployments: dg.DagsterInstance) -> list[str]:
        runs = deployments.get_runs(filters=dg.RunsFilter(job_name="deployment_job"))
        return sorted(run.tags["penguins/model_version"] for run in runs)

    def ticks_after(deployments: dg.DagsterInstance, moment: float) -> list:
        states = [
            s for s in deployments.all_instigator_state() if s.instigator_name == "champion_sensor"
        ]
        if not states:
            return []
        ticks = deployments.get_ticks(states[0].instigator_origin_id, states[0].selector_id)
        return [t for t in ticks if t.timestamp > moment and t.is_completed]

    with dg.DagsterInstance.from_config(str(home)) as deployments:
        assert train_lineage(instance, mlflow_tracking, **WEAK_TRAINING).success  # v1: first
        wait_for(lambda: requested(deployments) == ["1"], daemon, log, "a run for version 1")
        assert train_lineage(instance, mlflow_tracking, **QUICK_TRAINING).success  # v2 beats it
        wait_for(lambda: requested(deployments) == ["1", "2"], daemon, log, "a run for v2")
        assert not train_lineage(instance, mlflow_tracking, **WEAK_TRAINING).success  # v3 loses
        trained = time.time()
        wait_for(lambda: len(ticks_after(deployments, trained)) >= 2, daemon, log, "two ticks")
        assert requested(deployments) == ["1", "2"], "the daemon never asked to deploy v3"
        champion = promotion.champion(mlflow_tracking.client(), name)
        assert champion is not None and str(champion.version) == "2"


def test_a_champion_that_cannot_be_scored_is_never_replaced_by_the_gate(fresh_registry, tmp_path):
    """Fail closed: without the champion's score there is no evidence that the challenger
    is better, so it is not promoted (a person still can, by hand)."""
    from penguins_platform_tests.conftest import run_training

    instance, tracking = fresh_registry
    client = tracking.client()
    name = tracking.registered_model_name
    missing = client.create_model_version(name, (tmp_path / "gone").as_uri())
    promotion.promote(
        client, name, str(missing.version), promotion.Promotion("manual", "test", "tests", "2")
    )
    result = run_training(instance, tracking, **QUICK_TRAINING)
    assert not result.success
    [gate] = [e for e in result.get_asset_check_evaluations() if e.check_name == "beats_champion"]
    assert not gate.passed
    assert (gate.description or "").startswith(
        f"champion version {missing.version} could not be scored: "
    )
    current = promotion.champion(client, name)
    assert current is not None and current.version == missing.version
