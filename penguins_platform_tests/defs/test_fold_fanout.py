"""Cross-validation folds as separate steps: the multiprocess executor, the local stand-in for
ECS tasks or Kubernetes pods, runs each fold in a process of its own and scores exactly as the
in-process default does."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import dagster as dg
import yaml

from penguins_platform.project import INSTANCE_TEMPLATE
from penguins_platform.tracking.contract import DAGSTER_RUN_TAG
from penguins_platform_tests.conftest import CLOUD_VARIABLES, REPO_ROOT, VENV_BIN

FOLDS = 2
CONFIG = {"epochs": 8, "batch_size": 32, "learning_rate": 0.01, "seed": 7, "folds": FOLDS}


def _scores(instance: dg.DagsterInstance, run_id: str) -> dict[str, object]:
    materialization = next(
        materialization
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        if (materialization := record.event_log_entry.asset_materialization) is not None
        and materialization.asset_key.path == ["cross_validation_scores"]
    )
    metadata: dict[str, Any] = {k: v.value for k, v in materialization.metadata.items()}
    return {
        "accuracy_mean": metadata["accuracy_mean"],
        "loss_mean": metadata["loss_mean"],
        "folds": [
            {key: record.data[key] for key in ("fold", "accuracy", "loss", "test_rows")}
            for record in metadata["folds"].records
        ],
        "confusion_matrix": metadata["confusion_matrix"],
    }


def _step_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, int | None]:
    pids = {}
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_START
    ).records:
        event = record.event_log_entry.dagster_event
        assert event is not None and event.step_key is not None, record
        pids[event.step_key] = event.pid
    return pids


def test_multiprocess_folds_run_apart_and_score_as_in_process(
    tmp_path, sqlite_store, mlflow_tracking, monkeypatch, train_lineage
):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_TEMPLATE.read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        in_process = train_lineage(
            instance,
            mlflow_tracking,
            selection=["raw_penguins", "penguins", "cross_validation_scores"],
            **CONFIG,
        )
        assert in_process.success

    # The same asset again, in a new process with PENGUINS_EXECUTOR=multiprocess: its input
    # `penguins` comes back through the I/O manager, and every step is a child process.
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"ops": {"cross_validation_scores": {"config": CONFIG}}}))
    env = {
        **{k: v for k, v in os.environ.items() if k not in CLOUD_VARIABLES},
        "DAGSTER_HOME": str(home),
        "PENGUINS_EXECUTOR": "multiprocess",
        "MLFLOW_TRACKING_URI": mlflow_tracking.tracking_uri,
        "MLFLOW_ARTIFACT_LOCATION": sqlite_store.artifact_location,
        "MLFLOW_EXPERIMENT_NAME": mlflow_tracking.experiment_name,
    }
    command = [
        str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "penguins_platform.definitions",
        "--select", "cross_validation_scores", "-c", str(config),
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    with dg.DagsterInstance.get() as instance:
        fanned_out = instance.get_runs(limit=1)[0]
        assert fanned_out.run_id != in_process.run_id
        assert fanned_out.status == dg.DagsterRunStatus.SUCCESS
        pids = _step_pids(instance, fanned_out.run_id)
        fold_steps = {key for key in pids if "score_fold" in key}
        assert fold_steps == {
            f"cross_validation_scores.score_fold[fold_{n}]" for n in range(1, FOLDS + 1)
        }
        # Every step, each fold included, in a process of its own.
        assert len(set(pids.values())) == len(pids)
        assert _scores(instance, fanned_out.run_id) == _scores(instance, in_process.run_id)

    # One MLflow parent run per Dagster run, with one nested run per fold, even with the
    # folds logging from separate processes.
    client = mlflow_tracking.client()
    experiment = mlflow_tracking.experiment_id()
    parents = client.search_runs(
        [experiment], filter_string=f"tags.{DAGSTER_RUN_TAG} = '{fanned_out.run_id}'"
    )
    parents = [run for run in parents if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'"
    )
    assert sorted(run.info.run_name for run in children) == [
        f"fold-{n}" for n in range(1, FOLDS + 1)
    ]


def _fold_logs(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(run_id)
        if "at a time, in this process" in (entry.user_message or "")
    ]


def test_in_process_folds_train_two_at_a_time_and_score_as_one_after_another(
    instance, mlflow_tracking, train_lineage
):
    """The default executor: `split_folds` starts the folds in two background threads, each
    `score_fold` step takes its fold's result, and every score equals the sequential run's."""
    from penguins_platform.defs.resources import FoldWorkers

    config = {**CONFIG, "folds": 4}
    selection = ["raw_penguins", "penguins", "cross_validation_scores"]
    runs = {}
    for workers in (1, 2):
        runs[workers] = train_lineage(
            instance, mlflow_tracking, selection=selection,
            fold_workers=FoldWorkers(workers=workers), **config,
        )  # fmt: skip
        assert runs[workers].success
    assert _fold_logs(instance, runs[1].run_id) == []
    assert _fold_logs(instance, runs[2].run_id) == [
        "training 4 folds, 2 at a time, in this process"
    ]
    assert _scores(instance, runs[2].run_id) == _scores(instance, runs[1].run_id)
    # Still one step and one nested MLflow run a fold.
    pids = _step_pids(instance, runs[2].run_id)
    assert sum("score_fold" in key for key in pids) == 4
    assert len(set(pids.values())) == 1, "the in-process executor keeps every step in one process"


def test_fold_workers_start_nothing_under_a_step_executor(monkeypatch):
    """With PENGUINS_EXECUTOR=multiprocess each fold step is its own process: training all
    folds in the background of `split_folds` would only waste that process's time."""
    import numpy as np
    import pandas as pd

    from penguins_platform.defs.resources import FoldWorkers
    from penguins_platform.ml.evaluation import FoldSplit
    from penguins_platform.ml.model import TrainingParameters

    splits = [FoldSplit(n, np.array([0]), np.array([1])) for n in (1, 2)]
    monkeypatch.setenv("PENGUINS_EXECUTOR", "multiprocess")
    resource = FoldWorkers(workers=2)
    assert resource.start(pd.DataFrame(), splits, TrainingParameters()) == 1
    monkeypatch.setenv("PENGUINS_EXECUTOR", "in_process")
    # Keras's per-step fit shares NumPy's global generator: never in threads.
    assert resource.start(pd.DataFrame(), splits, TrainingParameters(steps_per_execution=1)) == 1
