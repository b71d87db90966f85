"""A password in the tracking URI is used, and shown nowhere: not on the terminal, not in
Dagster's event log, not in a sensor's skip reason, not in the MLflow store on disk.

The server is a real `mlflow server --app-name basic-auth`, so a wrong password is refused
the way production's server refuses it.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from penguins_platform.defs.resources import (
    AzureMLEndpoint,
    LocalEndpoint,
    MlflowTracking,
    SageMakerEndpoint,
)
from penguins_platform.defs.sensors import champion_sensor
from penguins_platform.project import DEFAULT_MLFLOW_DIR
from penguins_platform.tracking.store import MlflowUnreachableError
from penguins_platform_tests.conftest import VENV_BIN, migrated_store, model_versions
from penguins_platform_tests.servers import (
    free_port,
    start_process,
    stop_process_group,
    wait_for_http,
)

USER = "alice"
SENTINEL = "sentinel-Pa55word-7f3a9c"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory, built_once) -> Iterator[str]:
    """A basic-auth MLflow server whose admin is alice, with the sentinel password."""
    root = tmp_path_factory.mktemp("mlflow-auth")
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {USER}\n"
        f"admin_password = {SENTINEL}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # MLflow's credential cache: a correct password is checked against its scrypt hash
        # once, then matched in memory; a wrong one is never cached. Without it the server
        # spends 0.15 s on the hash two or three times a request, 45 s of one training.
        "auth_cache_ttl_seconds = 600\n"
    )
    port = free_port()
    log = root / "server.log"
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "penguins-test-only",
    }
    command = [
        str(VENV_BIN / "mlflow"), "server", "--app-name", "basic-auth",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    # A store migrated once for the session: the server then skips MLflow's migrations.
    shutil.copy(built_once("mlflow-store", migrated_store) / "mlflow.db", root / "server.db")
    process = start_process(command, log, env=env, cwd=root)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", process, log, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process_group(process)


def _train(penguins_cli, home: Path, tracking_uri: str, *args: str):
    """`python -m penguins_platform train` on `tracking_uri`, with no credentials but its own."""
    env = {
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_TRACKING_USERNAME": None,
        "MLFLOW_TRACKING_PASSWORD": None,
    }
    return penguins_cli("train", *args, env=env)


def _files_holding(root: Path, secret: str) -> list[Path]:
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_training_through_a_uri_with_a_password_never_shows_it(auth_server, tmp_path, penguins_cli):
    uri = f"http://{USER}:{SENTINEL}@{auth_server}"
    done = _train(
        penguins_cli, tmp_path / "home", uri, "--epochs", "1", "--folds", "2", "--threshold", "0.1"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    *_, registered, promoted = done.stdout.strip().splitlines()
    assert registered.startswith("Registered penguins version 1")
    assert promoted.startswith("Champion: version 1 (no champion to beat")
    assert SENTINEL not in done.stdout + done.stderr
    assert _files_holding(tmp_path / "home", SENTINEL) == [], "Dagster's storage holds it"
    assert _files_holding(DEFAULT_MLFLOW_DIR, SENTINEL) == []
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = (
        USER,
        SENTINEL,
    )
    try:
        assert model_versions(f"http://{auth_server}", "penguins") == ["1"]
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]


def test_an_unreachable_server_is_reported_with_the_password_masked(tmp_path, penguins_cli):
    uri = f"http://{USER}:{SENTINEL}@127.0.0.1:{free_port()}"
    done = _train(penguins_cli, tmp_path / "home", uri)
    assert done.returncode == 1
    assert f"MLflow tracking server http://***@127.0.0.1:{uri.rsplit(':', 1)[1]}" in done.stderr
    assert "is unreachable" in done.stderr
    assert SENTINEL not in done.stdout + done.stderr
    assert _files_holding(tmp_path / "home", SENTINEL) == []
    assert len(done.stderr.strip().splitlines()) <= 4, "a short summary, no stack traces"


def test_a_wrong_password_is_refused_before_any_step(auth_server):
    tracking = MlflowTracking(tracking_uri=f"http://{USER}:not-{SENTINEL}@{auth_server}")
    with pytest.raises(MlflowUnreachableError, match="refused the credentials") as raised:
        tracking.ensure_reachable()
    assert SENTINEL not in str(raised.value)


def test_the_probe_sends_the_credentials_as_a_header(auth_server, monkeypatch):
    MlflowTracking(tracking_uri=f"http://{USER}:{SENTINEL}@{auth_server}").ensure_reachable()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SENTINEL)
    MlflowTracking(tracking_uri=f"http://{auth_server}").ensure_reachable()


def test_the_sensor_skip_reason_masks_the_password(instance):
    tracking = MlflowTracking(tracking_uri=f"http://{USER}:{SENTINEL}@127.0.0.1:{free_port()}")
    context = dg.build_sensor_context(
        instance=instance,
        resources={
            "mlflow": tracking,
            "local": LocalEndpoint(),
            "sagemaker": SageMakerEndpoint(),
            "azure": AzureMLEndpoint(),
        },
    )
    result = champion_sensor.evaluate_tick(context)
    assert result.skip_message is not None
    assert "http://***@127.0.0.1" in result.skip_message
    assert SENTINEL not in result.skip_message
