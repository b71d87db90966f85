"""Timing helpers shared by the benchmarks: subprocess wall time, medians, ratio lines."""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Measure this checkout, whatever the virtualenv's editable install points at.
sys.path.insert(0, str(REPO_ROOT))


def wall_time(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds from spawn to exit of `command`; fails loudly if it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        command, env={**os.environ, **(env or {})}, cwd=REPO_ROOT, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return elapsed


def alternate(repeats: int, **runs: Callable[[], float]) -> dict[str, list[float]]:
    """Run each measurement in turn, `repeats` times, so drift on a noisy box hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(run())
    return samples


def report(title: str, baseline: str, candidate: str, samples: dict[str, list[float]],
           target: float) -> float:  # fmt: skip
    base = statistics.median(samples[baseline])
    cand = statistics.median(samples[candidate])
    ratio = cand / base
    if target == float("inf"):
        print(f"{title}: {ratio:.2f} (reported, no target)")
    else:
        verdict = "meets" if ratio <= target else "MISSES"
        print(f"{title}: {ratio:.2f} ({verdict} target <= {target})")
    for name in (baseline, candidate):
        values = ", ".join(f"{v:.2f}" for v in samples[name])
        print(f"  {name}: median {statistics.median(samples[name]):.2f} s  [{values}]")
    return ratio


class TrainingSandbox:
    """Fresh, equal footing for each timed training run under `work`.

    Each run gets its own copy of one pre-migrated SQLite MLflow store (migrating takes
    seconds, which no user pays twice); all share one Dagster home, as `make train` reuses
    `.dagster/`, and one JAX compilation cache, as `.cache/jax` is shared.
    """

    def __init__(self, work: Path) -> None:
        from penguins_platform.project import INSTANCE_TEMPLATE

        self.work = work
        self.home = work / "dagster-home"
        self.home.mkdir(parents=True)
        shutil.copy(INSTANCE_TEMPLATE, self.home / "dagster.yaml")
        self.template = work / "template.db"
        self._runs = itertools.count()
        from mlflow.tracking import MlflowClient

        MlflowClient(f"sqlite:///{self.template}").search_experiments()

    def env(self, **extra: str) -> dict[str, str]:
        run = self.work / f"run-{next(self._runs)}"
        run.mkdir()
        shutil.copy(self.template, run / "mlflow.db")
        return {
            "MLFLOW_TRACKING_URI": f"sqlite:///{run / 'mlflow.db'}",
            "MLFLOW_ARTIFACT_LOCATION": (run / "artifacts").as_uri(),
            "DAGSTER_HOME": str(self.home),
            "JAX_COMPILATION_CACHE_DIR": str(self.work / "jax-cache"),
            **extra,
        }
