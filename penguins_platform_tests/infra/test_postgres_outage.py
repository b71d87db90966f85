"""A Postgres outage in the middle of a run: that run fails with the database's error, and
the next run works once the database is back. A file of its own, so the test runner can run
it beside the other Postgres tests."""

from __future__ import annotations

import os

import dagster as dg

from penguins_platform_tests.conftest import CLOUD_VARIABLES, REPO_ROOT, VENV_BIN
from penguins_platform_tests.infra.conftest import wait_for
from penguins_platform_tests.postgres import postgres_home
from penguins_platform_tests.servers import start_process, stop_process_group

# Dagster retries a lost Postgres connection 5 times, waiting from 0.2 s and doubling: about
# 11 s a storage call, and the run makes three or four before it gives up. The same 5 retries
# from 0.01 s take about 0.6 s, so the outage is as real and the test 40 s shorter. The
# assert makes a Dagster release that changes the function fail here, not go slow.
SHORT_RETRIES = """
import runpy
import dagster_postgres.utils as pg
assert pg.retry_pg_connection_fn.__defaults__ == (5, 0.2), pg.retry_pg_connection_fn.__defaults__
pg.retry_pg_connection_fn.__defaults__ = (5, 0.01)
runpy.run_module("penguins_platform", run_name="__main__", alter_sys=True)
"""


def test_postgres_outage_fails_the_run_and_a_later_run_works(
    tmp_path, sqlite_store, monkeypatch, postgres_cluster
):
    """The database stops in the middle of training: that run fails with the database's
    error, and once the database is back the next run succeeds. A cluster of its own, so
    the outage touches no other test."""
    with postgres_cluster() as cluster:
        cluster.create_database("dagster")
        for variable, value in cluster.environment("dagster").items():
            monkeypatch.setenv(variable, value)
        home = postgres_home(tmp_path / "home")
        env = {
            **{k: v for k, v in os.environ.items() if k not in CLOUD_VARIABLES},
            **cluster.environment("dagster"),
            "DAGSTER_HOME": str(home),
            "MLFLOW_TRACKING_URI": sqlite_store.tracking_uri,
            "MLFLOW_ARTIFACT_LOCATION": sqlite_store.artifact_location,
            "PENGUINS_MODEL_NAME": "penguins-outage",
        }
        train = [str(VENV_BIN / "python"), "-c", SHORT_RETRIES, "train"]
        log = tmp_path / "outage.log"
        process = start_process(train, log, env=env, cwd=REPO_ROOT)
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:

                def folds_started():
                    runs = instance.get_runs(limit=1)
                    if not runs:
                        return False
                    records = instance.get_records_for_run(
                        runs[0].run_id, of_type=dg.DagsterEventType.STEP_START
                    ).records
                    steps = [r.event_log_entry.step_key or "" for r in records]
                    return any("score_fold" in step for step in steps)

                wait_for(folds_started, process, log, "a fold step")
            cluster.stop()
            assert cluster.running_pid() is None
            process.wait(timeout=180)
        finally:
            stop_process_group(process)
        output = log.read_text()
        assert process.returncode == 1, output[-3000:]
        assert "The Dagster instance's database stopped answering" in output, output[-3000:]
        assert f"port {cluster.port} failed: Connection refused" in output, output[-3000:]

        cluster.start()
        again = tmp_path / "again.log"
        retry = start_process(
            [*train, "--epochs", "1", "--folds", "2", "--threshold", "0"],
            again,
            env=env,
            cwd=REPO_ROOT,
        )
        try:
            retry.wait(timeout=300)
        finally:
            stop_process_group(retry)
        assert retry.returncode == 0, again.read_text()[-3000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            latest = instance.get_runs(limit=1)[0]
            assert latest.status == dg.DagsterRunStatus.SUCCESS
