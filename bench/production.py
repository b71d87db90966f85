"""Production mode, in ratios measured in one run:

1. Instance storage: `python -m penguins_platform train` on a Dagster instance in PostgreSQL
   (a throwaway local cluster, the production storage block of infra/dagster/dagster.yaml)
   over the same command on the default SQLite instance.
2. Fold fan-out: `cross_validation_scores` materialized with the multiprocess executor (each
   fold its own process, the local stand-in for one ECS task or pod per fold) over the
   in-process default, on this machine. It also splits a fold step's time into start-up
   (spawning the process and loading the definitions, before the step starts) and the
   fold's own work, to show what a cluster executor pays per step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import yaml
from common import PYTHON, REPO_ROOT, alternate, report, wall_time

from penguins_platform.project import INSTANCE_TEMPLATE
from penguins_platform_tests.postgres import postgres_home, running_cluster

DAGSTER = str(Path(PYTHON).with_name("dagster"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="penguins-bench-production-"))
    try:
        with running_cluster() as cluster:
            storage(work, cluster, args.repeats)
        fan_out(work, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mlflow_env(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{directory / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_LOCATION": (directory / "artifacts").as_uri(),
    }


def storage(work: Path, cluster, repeats: int) -> None:
    cluster.create_database("bench")
    sqlite_home = work / "sqlite-home"
    sqlite_home.mkdir()
    shutil.copy(INSTANCE_TEMPLATE, sqlite_home / "dagster.yaml")
    # The local instance with the production storage block, so storage is all that differs.
    local = yaml.safe_load(INSTANCE_TEMPLATE.read_text())
    pg_home = postgres_home(work / "postgres-home", **local)
    common = {**_mlflow_env(work / "mlflow"), "JAX_COMPILATION_CACHE_DIR": str(work / "jax")}
    train = [PYTHON, "-m", "penguins_platform", "train"]

    def on_sqlite() -> float:
        return wall_time(train, {**common, "DAGSTER_HOME": str(sqlite_home)})

    def on_postgres() -> float:
        env = {**common, **cluster.environment("bench"), "DAGSTER_HOME": str(pg_home)}
        return wall_time(train, env)

    on_sqlite(), on_postgres()  # warm the JAX cache, the file cache and both schemas
    samples = alternate(repeats, sqlite=on_sqlite, postgres=on_postgres)
    report("training job, Postgres instance over SQLite", "sqlite", "postgres", samples, 1.3)


def fan_out(work: Path, repeats: int) -> None:
    home = work / "fan-out-home"
    home.mkdir()
    shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
    env = {
        **os.environ,
        **_mlflow_env(work / "fan-out-mlflow"),
        "DAGSTER_HOME": str(home),
        "JAX_COMPILATION_CACHE_DIR": str(work / "jax"),
    }
    materialize = [DAGSTER, "asset", "materialize", "-m", "penguins_platform.definitions"]
    # The inputs once, so both executors start from the same stored `penguins`.
    done = subprocess.run(
        [*materialize, "--select", "raw_penguins,penguins"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-4000:])
    cv = [*materialize, "--select", "cross_validation_scores"]

    def in_process() -> float:
        return wall_time(cv, {**env, "PENGUINS_EXECUTOR": "in_process"})

    def multiprocess() -> float:
        return wall_time(cv, {**env, "PENGUINS_EXECUTOR": "multiprocess"})

    in_process()  # warm the JAX cache
    samples = alternate(repeats, in_process=in_process, multiprocess=multiprocess)
    report(
        "fold fan-out, multiprocess over in-process on this 2-core box",
        "in_process", "multiprocess", samples, target=float("inf"),
    )  # fmt: skip
    step_breakdown(home)


def step_breakdown(home: Path) -> None:
    """Start-up and work of the fold steps in the latest run of each executor. Start-up is
    from the step's first event (the executor launching it) to STEP_START: spawning the
    process, loading the definitions and building the resources."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        seen: set[str] = set()
        for run in instance.get_runs(limit=20):
            first, starts, ends = _fold_times(instance, run.run_id)
            if not starts:
                continue
            executor = "multiprocess" if _pids(instance, run.run_id) > 1 else "in_process"
            if executor in seen:
                continue
            seen.add(executor)
            work = statistics.mean(ends[key] - starts[key] for key in starts)
            start_up = statistics.mean(starts[key] - first[key] for key in starts)
            print(
                f"  {executor}: a fold step's start-up {start_up:.2f} s, its work "
                f"(fit and score, imports inside it included) {work:.2f} s, on average"
            )


def _pids(instance, run_id: str) -> int:
    import dagster as dg

    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return len({record.event_log_entry.dagster_event.pid for record in records})


def _fold_times(instance, run_id: str) -> tuple[dict[str, float], ...]:
    import dagster as dg

    first: dict[str, float] = {}
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for record in instance.get_records_for_run(run_id).records:
        entry = record.event_log_entry
        step = entry.step_key
        if entry.dagster_event is None or step is None or "score_fold" not in step:
            continue
        first.setdefault(step, entry.timestamp)
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            starts[step] = entry.timestamp
        elif entry.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            ends[step] = entry.timestamp
    return first, starts, ends


if __name__ == "__main__":
    main()
