"""Serving speed: the fast path against the reference path, and our endpoint against
`mlflow models serve` on the same registered version. All figures come from one run.

- pyfunc single-row p50: the registered pyfunc's predict over `ColumnTransformer.transform`
  then `keras.Model.predict` (target >= 10x faster);
- 10,000-row batch time, same two paths (target <= 1.0x);
- server requests per second and p50/p99 for single-row requests, sequential and with 8
  concurrent clients, our endpoint (capture on) over `mlflow models serve --env-manager local`
  (target >= 3x).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import PYTHON, REPO_ROOT

from penguins_platform import defaults
from penguins_platform.deploy.smoke import percentile
from penguins_platform.ml.schema import SAMPLE_PENGUIN
from penguins_platform_tests.servers import free_port

os.environ.setdefault("KERAS_BACKEND", "jax")
MODEL_URI = f"models:/{defaults.MODEL_NAME}/1"  # the version `train` registers


def timed(function, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def train(work: Path) -> dict[str, str]:
    env = {
        "DAGSTER_HOME": str(work / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    done = subprocess.run(
        [PYTHON, "-m", "penguins_platform", "train"],
        env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
    return env


def model_paths(env: dict[str, str]):
    import joblib
    import mlflow
    import mlflow.artifacts

    from penguins_platform.ml.model import import_keras

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=MODEL_URI))
    network = import_keras().models.load_model(local / "artifacts" / "model.keras")
    transformers = joblib.load(local / "artifacts" / "transformers.joblib")
    pyfunc = mlflow.pyfunc.load_model(MODEL_URI)
    return local, network, transformers, pyfunc


def bench_prediction(network, transformers, pyfunc) -> None:
    import pandas as pd

    from penguins_platform.ml import schema

    data = pd.read_csv(REPO_ROOT / "data" / "penguins.csv").replace({"sex": {".": None}})
    features = data[list(schema.FEATURES)]
    one = features.head(1)
    batch = pd.concat([features] * 30, ignore_index=True).head(10_000)
    model = pyfunc.unwrap_python_model()

    def reference(frame):
        return network.predict(transformers.features.transform(frame), verbose=0)

    reference(one), model.predict(None, one), pyfunc.predict(one)  # warm up
    ref_one = statistics.median(timed(lambda: reference(one), 200))
    fast_one = statistics.median(timed(lambda: model.predict(None, one), 2000))
    wrapped_one = statistics.median(timed(lambda: pyfunc.predict(one), 500))
    records_one = statistics.median(
        timed(lambda: model.inference.predict_records([SAMPLE_PENGUIN]), 2000)
    )
    ratio = ref_one / fast_one
    print(f"pyfunc single-row p50: {ratio:.0f}x faster ({'meets' if ratio >= 10 else 'MISSES'} "
          f"target >= 10x)")  # fmt: skip
    print(f"  reference (ColumnTransformer.transform + keras predict): {ref_one * 1e6:.0f} us")
    print(f"  registered pyfunc predict (fast path): {fast_one * 1e6:.0f} us")
    print(f"  through mlflow's PyFuncModel.predict wrapper: {wrapped_one * 1e6:.0f} us "
          f"({ref_one / wrapped_one:.1f}x)")  # fmt: skip
    print(f"  endpoint's record path (validate + encode + predict): {records_one * 1e6:.0f} us")

    reference(batch), model.predict(None, batch)
    ref_batch = statistics.median(timed(lambda: reference(batch), 7))
    fast_batch = statistics.median(timed(lambda: model.predict(None, batch), 7))
    ratio = fast_batch / ref_batch
    print(f"10,000-row batch: {ratio:.2f}x the reference time "
          f"({'meets' if ratio <= 1.0 else 'MISSES'} target <= 1.0)")  # fmt: skip
    print(f"  reference {ref_batch * 1e3:.1f} ms, fast path {fast_batch * 1e3:.1f} ms")


def wait_for(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


def load(url: str, clients: int, requests_per_client: int) -> tuple[float, list[float]]:
    """(requests per second, per-request latencies) for single-row requests."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"inputs": [SAMPLE_PENGUIN]}).encode()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        for _ in range(requests_per_client):
            start = time.perf_counter()
            connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            reply = connection.getresponse()
            reply.read()
            mine.append(time.perf_counter() - start)
            if reply.status != 200:
                errors.append(str(reply.status))
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{url}: {len(errors)} failed requests, e.g. {errors[0]}")
    return clients * requests_per_client / elapsed, latencies


def bench_servers(work: Path, env: dict[str, str], model_dir: Path) -> None:
    from penguins_platform.serving import service

    ours = service.EndpointPaths(work / "serving")
    our_url = f"http://127.0.0.1:{free_port()}"
    mlflow_port = free_port()
    mlflow_env = {
        **os.environ, **env,
        "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}",
    }  # fmt: skip
    mlflow_log = (work / "mlflow-serve.log").open("wb")
    mlflow_server = subprocess.Popen(
        [str(Path(PYTHON).parent / "mlflow"), "models", "serve", "-m", MODEL_URI,
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port)],
        env=mlflow_env, stdout=mlflow_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        options = service.ServerOptions(
            "127.0.0.1", int(our_url.rsplit(":", 1)[1]), f"sqlite:///{work / 'capture.db'}",
            defaults.MAX_ROWS, defaults.MAX_BODY_BYTES,
        )  # fmt: skip
        service.start(ours, model_dir, "1", defaults.MODEL_NAME, options)
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        wait_for(f"{mlflow_url}/ping", mlflow_server)
        results = {}
        for name, url in (("penguins endpoint", our_url), ("mlflow models serve", mlflow_url)):
            load(url, 1, 50)  # warm up
            results[name] = {"sequential": load(url, 1, 400), "8 clients": load(url, 8, 100)}
        for mode in ("sequential", "8 clients"):
            ours_rps = results["penguins endpoint"][mode][0]
            theirs_rps = results["mlflow models serve"][mode][0]
            ratio = ours_rps / theirs_rps
            verdict = "meets" if ratio >= 3 else "MISSES"
            print(f"server throughput, {mode}: {ratio:.1f}x mlflow models serve "
                  f"({verdict} target >= 3x, capture on)")  # fmt: skip
            for name in ("penguins endpoint", "mlflow models serve"):
                rps, latencies = results[name][mode]
                print(f"  {name}: {rps:.0f} req/s, p50 {percentile(latencies, 0.5) * 1e3:.2f} ms, "
                      f"p99 {percentile(latencies, 0.99) * 1e3:.2f} ms")  # fmt: skip
    finally:
        service.stop(ours)
        service.terminate_group(mlflow_server.pid)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="penguins-serving-bench-"))
    try:
        env = train(work)
        os.environ.update(env)
        local, network, transformers, pyfunc = model_paths(env)
        bench_prediction(network, transformers, pyfunc)
        bench_servers(work, env, local / "artifacts" / "inference")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
