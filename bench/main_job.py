"""Main job ratio: `python -m penguins_platform train` over the same work in plain Python.

Both run as fresh processes (interpreter start and imports included, as a user pays them),
each on its own copy of one pre-migrated SQLite MLflow store, sharing one warmed JAX
compilation cache. The Dagster runs share one instance, as `make train` reuses `.dagster/`.
Target: <= 1.5.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import PYTHON, alternate, report, wall_time

from penguins_platform.project import INSTANCE_TEMPLATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="penguins-bench-"))
    template = work / "template.db"
    counter = iter(range(1_000_000))
    home = work / "dagster-home"
    home.mkdir()
    shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
    try:
        _migrate(template)

        def fresh_env() -> dict[str, str]:
            run = work / f"run-{next(counter)}"
            run.mkdir()
            shutil.copy(template, run / "mlflow.db")
            return {
                "MLFLOW_TRACKING_URI": f"sqlite:///{run / 'mlflow.db'}",
                "MLFLOW_ARTIFACT_LOCATION": (run / "artifacts").as_uri(),
                "DAGSTER_HOME": str(home),
                "JAX_COMPILATION_CACHE_DIR": str(work / "jax-cache"),
            }

        def plain() -> float:
            return wall_time([PYTHON, "bench/plain_training.py"], fresh_env())

        def dagster_job() -> float:
            return wall_time([PYTHON, "-m", "penguins_platform", "train"], fresh_env())

        plain(), dagster_job()  # warm the JAX cache and the file cache
        samples = alternate(args.repeats, plain_python=plain, dagster_main_job=dagster_job)
        report("main job ratio", "plain_python", "dagster_main_job", samples, target=1.5)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _migrate(database: Path) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{database}").search_experiments()


if __name__ == "__main__":
    main()
