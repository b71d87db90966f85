"""Sensor-driven redeploys, timed on a real `dagster dev` (webserver and daemon).

Prints, for a first deployment and for a redeploy of a new version:
- detection latency, from the version's registration in MLflow to the run the sensor
  requested, against the sensor's interval (the default, 30 s, unless
  PENGUINS_SENSOR_INTERVAL is set);
- the wall time of the sensor-triggered deployment run, against the same swap and smoke test
  done directly, without Dagster, in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import PYTHON, REPO_ROOT

from penguins_platform import defaults
from penguins_platform.project import INSTANCE_TEMPLATE
from penguins_platform_tests.servers import free_port

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def train(env: dict[str, str]) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "penguins_platform", "train"], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")


def wait_for_run(home: Path, version: str, timeout: float = 300.0):
    import dagster as dg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(
                filters=dg.RunsFilter(tags={"penguins/model_version": version})
            )
            if runs and runs[0].status.value in TERMINAL:
                record = instance.get_run_record_by_id(runs[0].run_id)
                stats = instance.get_run_stats(runs[0].run_id)
                return runs[0], record, stats
        time.sleep(0.5)
    raise SystemExit(f"no finished deployment run for version {version} within {timeout:.0f}s")


def registered_at(env: dict[str, str], version: str) -> float:
    from mlflow.tracking import MlflowClient

    uri = env["MLFLOW_TRACKING_URI"]
    return (
        MlflowClient(uri, registry_uri=uri)
        .get_model_version(defaults.MODEL_NAME, version)
        .creation_timestamp
        / 1000
    )


def direct_redeploy(env: dict[str, str], version: str) -> float:
    """The same download, swap and smoke test, called directly: the floor for a redeploy."""
    import tempfile

    from penguins_platform.deploy.local import LocalTarget
    from penguins_platform.deploy.smoke import smoke_test
    from penguins_platform.serving.settings import LocalEndpointSettings
    from penguins_platform.tracking.store import MlflowStore

    settings = LocalEndpointSettings(
        port=int(env["PENGUINS_ENDPOINT_PORT"]), state_dir=env["PENGUINS_ENDPOINT_STATE_DIR"]
    )
    target = LocalTarget(settings, defaults.MODEL_NAME)
    store = MlflowStore(tracking_uri=env["MLFLOW_TRACKING_URI"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        deployment = target.deploy(version, store.download_model(version, Path(tmp)))
    result = smoke_test(
        lambda records: target.invoke(records, deployment), [{"island": "Dream"}] * 5, 20
    )
    if not result.valid:
        raise SystemExit(result.error)
    return time.perf_counter() - start


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="penguins-sensor-bench-"))
    home = work / "home"
    home.mkdir()
    shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "PENGUINS_ENDPOINT_PORT": str(free_port()),
        "PENGUINS_ENDPOINT_STATE_DIR": str(work / "serving"),
    }
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI")})
    interval = int(env.get("PENGUINS_SENSOR_INTERVAL", "30"))
    train(env)  # version 1, and the penguins table the smoke test draws from
    log = (work / "dagster-dev.log").open("wb")
    dev = subprocess.Popen(
        [str(Path(PYTHON).parent / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(free_port())],
        env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        rows = []
        for version in ("1", "2"):
            if version == "2":
                train(env)
            run, record, stats = wait_for_run(home, version)
            if run.status.value != "SUCCESS":
                raise SystemExit(f"deployment run for version {version} ended {run.status.value}")
            detection = record.create_timestamp.timestamp() - registered_at(env, version)
            rows.append((version, detection, stats.end_time - stats.start_time))
        direct = direct_redeploy(env, "1")
        print(f"sensor detection latency, registered to run requested (interval {interval} s):")
        for version, detection, _ in rows:
            note = " (includes dagster dev starting)" if version == "1" else ""
            print(f"  version {version}: {detection:.1f} s = {detection / interval:.2f}x{note}")
        print("sensor-triggered local deployment run, wall time (run start to end):")
        for version, _, duration in rows:
            kind = "first deploy (starts the server)" if version == "1" else "redeploy (swap)"
            print(f"  version {version}, {kind}: {duration:.1f} s")
        print(f"  the same swap + smoke test called directly: {direct:.2f} s "
              f"(redeploy run = {rows[1][2] / direct:.1f}x that)")  # fmt: skip
    finally:
        from penguins_platform.serving.service import terminate_group

        terminate_group(dev.pid, grace_seconds=20)
        subprocess.run([PYTHON, "-m", "penguins_platform", "stop"], env=env, cwd=REPO_ROOT,
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
