"""Main job ratio: `python -m penguins_platform train` over the same work in plain Python.

Both run as fresh processes (interpreter start and imports included, as a user pays them),
each on its own copy of one pre-migrated SQLite MLflow store, sharing one warmed JAX
compilation cache. The Dagster runs share one instance, as `make train` reuses `.dagster/`.
Target: <= 1.3.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import PYTHON, TrainingSandbox, alternate, report, wall_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="penguins-bench-"))
    try:
        sandbox = TrainingSandbox(work)

        def plain() -> float:
            return wall_time([PYTHON, "bench/plain_training.py"], sandbox.env())

        def dagster_job() -> float:
            return wall_time([PYTHON, "-m", "penguins_platform", "train"], sandbox.env())

        plain(), dagster_job()  # warm the JAX cache and the file cache
        samples = alternate(args.repeats, plain_python=plain, dagster_main_job=dagster_job)
        report("main job ratio", "plain_python", "dagster_main_job", samples, target=1.3)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
