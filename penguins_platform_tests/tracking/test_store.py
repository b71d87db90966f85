import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from penguins_platform.defs.resources import MlflowTracking
from penguins_platform.tracking.store import MlflowUnreachableError
from penguins_platform_tests.servers import free_port


def _context(run_id: str) -> SimpleNamespace:
    return SimpleNamespace(run=SimpleNamespace(run_id=run_id), job_name="training_job")


def test_unreachable_server_fails_in_seconds_naming_the_uri():
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(MlflowUnreachableError, match=rf"{uri} is unreachable"):
        MlflowTracking(tracking_uri=uri).ensure_reachable()
    assert time.monotonic() - start < 5


def test_reachable_server_passes_the_probe(mlflow_server):
    MlflowTracking(tracking_uri=mlflow_server.tracking_uri).ensure_reachable()


def test_plain_file_store_is_refused():
    with pytest.raises(MlflowUnreachableError, match="sqlite:///"):
        MlflowTracking(tracking_uri="/tmp/mlruns").ensure_reachable()


def test_sqlite_store_keeps_artifacts_beside_the_database(tmp_path):
    resource = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}")
    resource.ensure_reachable()
    experiment = resource.client().get_experiment(resource.experiment_id())
    assert experiment.artifact_location == (tmp_path / "db" / "artifacts").as_uri()


def test_every_step_of_a_dagster_run_shares_one_parent_run(mlflow_tracking):
    with mlflow_tracking.parent_run(_context("run-a")) as first:
        pass
    with mlflow_tracking.parent_run(_context("run-a")) as again:
        pass
    with mlflow_tracking.parent_run(_context("run-b")) as other:
        pass
    assert first == again != other
    assert mlflow_tracking.client().get_run(first).info.status == "FINISHED"


def test_a_failing_step_marks_the_parent_run_failed(mlflow_tracking):
    with pytest.raises(RuntimeError), mlflow_tracking.parent_run(_context("run-c")) as run_id:
        raise RuntimeError("boom")
    assert mlflow_tracking.client().get_run(run_id).info.status == "FAILED"


def test_nested_runs_hang_under_their_parent(mlflow_tracking):
    with mlflow_tracking.parent_run(_context("run-d")) as parent:
        child = mlflow_tracking.nested_run(parent, "fold-1")
    tags = mlflow_tracking.client().get_run(child).data.tags
    assert tags["mlflow.parentRunId"] == parent


def test_downloading_a_version_writes_no_store_into_the_working_directory(registry, tmp_path):
    """MLflow resolves models:/ through its process-wide registry URI; unset, that is
    sqlite:///mlflow.db in the working directory, which once landed in this repository."""
    import os
    import subprocess
    import sys

    _, tracking = registry
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    probe = (
        "from pathlib import Path; from penguins_platform.tracking.store import MlflowStore; "
        f"store = MlflowStore(tracking_uri={tracking.tracking_uri!r}, "
        f"registered_model_name={tracking.registered_model_name!r}); "
        f"print(store.download_model('1', Path({str(tmp_path / 'models')!r})))"
    )
    # A fresh process, as `make` starts one: MLflow exports the URIs it was given to the
    # environment of this one, where they would hide the problem.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (Path(done.stdout.strip()) / "MLmodel").exists()
    assert list(cwd.iterdir()) == []


def test_an_interrupted_first_open_leaves_no_half_made_store(tmp_path, monkeypatch):
    """A first `make train` stopped while MLflow migrates its new store (Ctrl-C, or
    `--max-runtime`) must not leave a store that every later open fails on."""
    import mlflow.store.db.utils as db_utils

    database = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{database}"
    migrate = db_utils._upgrade_db

    def interrupted(engine):  # the tables exist, the migrations never ran: a half-made store
        raise KeyboardInterrupt

    monkeypatch.setattr(db_utils, "_upgrade_db", interrupted)
    with pytest.raises(KeyboardInterrupt):
        first = MlflowTracking(tracking_uri=uri)
        first.ensure_reachable()  # as a run's resource does, before any step
        first.client().search_experiments()
    assert list(database.parent.iterdir()) == [], "nothing of the interrupted store is left"

    monkeypatch.setattr(db_utils, "_upgrade_db", migrate)
    store = MlflowTracking(tracking_uri=uri, experiment_name="after-the-interrupt")
    store.ensure_reachable()
    assert store.client().get_experiment(store.experiment_id()).name == "after-the-interrupt"
