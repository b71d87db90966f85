"""The README commands as a user runs them: `make train`, then `make serve/sample/stop`."""

import json
import os
import subprocess

import dagster as dg
import pytest

from penguins_platform_tests.conftest import REPO_ROOT, model_versions
from penguins_platform_tests.servers import free_port


def _make(target: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = ["make", "--no-print-directory", "-C", str(REPO_ROOT), target]
    if args:
        command.append(f"ARGS={' '.join(args)}")
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's environment: own Dagster home, MLflow store and endpoint, all in a tmp dir."""
    root = tmp_path_factory.mktemp("user")
    env = {
        "DAGSTER_HOME": str(root / "dagster_home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PENGUINS_ENDPOINT_PORT": str(free_port()),
        "PENGUINS_ENDPOINT_STATE_DIR": str(root / "serving"),
    }
    trained = _make("train", env)
    yield root, env, trained
    _make("stop", env)


def test_make_train_registers_a_version_and_records_the_run(user):
    root, env, done = user
    assert done.returncode == 0, done.stderr[-3000:]
    last_line = done.stdout.strip().splitlines()[-1]
    assert last_line.startswith("Registered penguins version 1: cross-validated accuracy 0.9")
    home = root / "dagster_home"
    assert "nux:\n  enabled: false" in (home / "dagster.yaml").read_text()
    assert model_versions(env["MLFLOW_TRACKING_URI"], "penguins") == ["1"]
    assert list((root / "artifacts").rglob("model.keras")), "artifacts sit beside the store"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [run.job_name for run in runs] == ["training_job"]
        assert runs[0].is_success


def test_make_train_with_a_high_threshold_exits_non_zero_and_says_why(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": store}
    done = _make("train", env, "--threshold", "0.99")
    assert done.returncode != 0
    assert "check trained_model:accuracy_threshold failed" in done.stderr
    assert "is below the threshold 0.9900" in done.stderr
    assert model_versions(store, "penguins") == []


def test_make_serve_then_sample_then_stop(user):
    root, env, trained = user
    assert trained.returncode == 0
    served = _make("serve", env)
    assert served.returncode == 0, served.stderr[-3000:]
    url = f"http://127.0.0.1:{env['PENGUINS_ENDPOINT_PORT']}"
    assert f"Serving penguins version 1 at {url}" in served.stdout
    assert (root / "serving" / "endpoint.pid").exists()

    sampled = _make("sample", env)
    assert sampled.returncode == 0, sampled.stderr
    answer = json.loads(sampled.stdout[sampled.stdout.index("{") :])
    assert answer["predictions"][0]["prediction"] == "Gentoo"
    assert answer["model_version"] == "1"

    stopped = _make("stop", env)
    assert f"Stopped the endpoint at {url}" in stopped.stdout
    assert not (root / "serving" / "endpoint.pid").exists()
    again = _make("sample", env)
    assert again.returncode != 0
    assert "start one with `make serve`" in again.stderr
