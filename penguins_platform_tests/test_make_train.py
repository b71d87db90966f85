"""The main job as a user runs it: `make train`, in a subprocess, on a fresh instance."""

import os
import subprocess

import dagster as dg

from penguins_platform_tests.conftest import REPO_ROOT, model_versions


def _make_train(home, store_uri, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home), "MLFLOW_TRACKING_URI": store_uri}
    command = ["make", "--no-print-directory", "-C", str(REPO_ROOT), "train"]
    if args:
        command.append(f"ARGS={' '.join(args)}")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_make_train_registers_a_version_and_records_the_run(tmp_path):
    home = tmp_path / "dagster_home"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = _make_train(home, store)
    assert done.returncode == 0, done.stderr[-3000:]
    last_line = done.stdout.strip().splitlines()[-1]
    assert last_line.startswith("Registered penguins version 1: cross-validated accuracy 0.9")
    assert "nux:\n  enabled: false" in (home / "dagster.yaml").read_text()
    assert model_versions(store, "penguins") == ["1"]
    assert list((tmp_path / "artifacts").rglob("model.keras")), "artifacts sit beside the store"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [run.job_name for run in runs] == ["training_job"]
        assert runs[0].is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("registered_model_version"))


def test_make_train_with_a_high_threshold_exits_non_zero_and_says_why(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = _make_train(tmp_path / "home", store, "--threshold", "0.99")
    assert done.returncode != 0
    assert "check trained_model:accuracy_threshold failed" in done.stderr
    assert "is below the threshold 0.9900" in done.stderr
    assert model_versions(store, "penguins") == []
