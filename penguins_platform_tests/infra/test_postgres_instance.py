"""The shared instance on a real PostgreSQL: runs, checks, sensor state and a database outage.

Storage is the production instance's own block from infra/dagster/dagster.yaml, so these
tests fail if that block (the psycopg2 scheme, the variables it reads) is wrong.
"""

from __future__ import annotations

import json
import time

import dagster as dg
from dagster._core.scheduler.instigation import TickStatus

from penguins_platform.defs.event_log import latest_check_outcome
from penguins_platform_tests.conftest import LINEAGE_ASSETS, latest_metadata
from penguins_platform_tests.infra.conftest import wait_for
from penguins_platform_tests.postgres import postgres_home, process_is_running
from penguins_platform_tests.servers import stop_process_group

QUEUED = dg.DagsterRunStatus.QUEUED
CHECKS = {
    "raw_penguins": ["required_columns", "measurements_are_numeric"],
    "penguins": [
        "species_are_known",
        "categories_are_known",
        "measurements_are_plausible",
        "missing_values_are_bounded",
    ],
    "trained_model": ["accuracy_threshold"],
}


def test_training_job_on_postgres_reads_back_from_a_fresh_instance(
    postgres_database, tmp_path, mlflow_tracking, train_lineage
):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    home = postgres_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = train_lineage(instance, mlflow_tracking)
        assert result.success
        run_id = result.run_id

    # A new instance object: nothing comes from the first one's memory.
    with dg.DagsterInstance.from_config(str(home)) as fresh:
        assert isinstance(fresh.run_storage, PostgresRunStorage)
        assert isinstance(fresh.event_log_storage, PostgresEventLogStorage)
        run = fresh.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.job_name == "training_job"
        for key in LINEAGE_ASSETS:
            event = fresh.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None and event.run_id == run_id, key
        metadata = latest_metadata(fresh, "cross_validation_scores")
        assert metadata["accuracy_mean"] > 0.7
        assert len(metadata["folds"].records) == 5
        for asset, names in CHECKS.items():
            for name in names:
                outcome = latest_check_outcome(fresh, dg.AssetCheckKey(dg.AssetKey(asset), name))
                assert outcome is not None and outcome.passed, (asset, name)
                assert outcome.run_id == run_id


def _sensor_state(instance: dg.DagsterInstance):
    states = [
        state
        for state in instance.all_instigator_state()
        if state.instigator_name == "champion_sensor"
    ]
    return states[0] if states else None


def test_sensor_cursor_and_run_keys_survive_a_daemon_restart(
    postgres_database, tmp_path, registry, dagster_daemon
):
    """The sensor requests one deployment for the champion; after the daemon
    restarts it keeps its cursor and requests nothing again. Runs stay queued (a queue limit
    of 0), so nothing is deployed and only the bookkeeping is under test."""
    _, tracking = registry
    home = postgres_home(
        tmp_path / "home",
        run_coordinator={
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": 0},
        },
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first = dagster_daemon(home, tmp_path / "daemon-1.log", tracking.tracking_uri,
                        tracking.registered_model_name)  # fmt: skip
        try:
            # The sensor creates the run, then submits it to the queue (QUEUED), where a
            # limit of 0 keeps it.
            runs = wait_for(
                lambda: instance.get_runs(filters=dg.RunsFilter(statuses=[QUEUED])),
                first, tmp_path / "daemon-1.log", "a queued run",
            )  # fmt: skip
            state = wait_for(
                lambda: (s := _sensor_state(instance)) and s.instigator_data.cursor and s,
                first, tmp_path / "daemon-1.log", "sensor cursor",
            )  # fmt: skip
        finally:
            stop_process_group(first)
        assert len(runs) == 1
        run_key = runs[0].tags["dagster/run_key"]
        cursor = state.instigator_data.cursor
        assert run_key == f"{tracking.registered_model_name}-{json.loads(cursor)['deployed']}"
        assert runs[0].tags["penguins/model_version"] == "2", "the champion, not v3"

        restarted_at = time.time()
        second = dagster_daemon(home, tmp_path / "daemon-2.log", tracking.tracking_uri,
                         tracking.registered_model_name)  # fmt: skip
        try:

            def ticks_since_restart():
                current = _sensor_state(instance)
                ticks = instance.get_ticks(current.instigator_origin_id, current.selector_id)
                return [t for t in ticks if t.timestamp > restarted_at and t.is_completed]

            ticks = wait_for(
                ticks_since_restart, second, tmp_path / "daemon-2.log", "tick after restart"
            )
        finally:
            stop_process_group(second)
        assert ticks[0].status == TickStatus.SKIPPED
        assert instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": run_key})) == runs
        assert len(instance.get_runs()) == 1
        assert _sensor_state(instance).instigator_data.cursor == cursor


def test_the_cluster_fixture_stops_its_server(postgres_cluster):
    with postgres_cluster() as cluster:
        pid = cluster.running_pid()
        assert pid is not None and process_is_running(pid)
        root = cluster.root
    assert not process_is_running(pid)
    assert not root.exists()
