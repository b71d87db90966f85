"""Load ratio: importing the Definitions over importing dagster, in fresh interpreters.

Dagster imports the definitions for every run, sensor tick and UI reload, so this is a
cost users pay constantly. Target: <= 1.3.

Two readings: the whole process, spawn to exit, as a run worker pays it; and the import
alone, timed inside the process. They differ by the interpreter's exit, which
`penguins_platform.definitions` makes cheaper by freezing what it loaded (`runtime.py`).
"""

from __future__ import annotations

import argparse
import subprocess

from common import PYTHON, alternate, report, wall_time

TIMED_IMPORT = (
    "import time; s = time.perf_counter(); import {module}; print(time.perf_counter() - s)"
)


def import_seconds(module: str) -> float:
    """Seconds the import takes inside a fresh interpreter, its start and exit left out."""
    done = subprocess.run(
        [PYTHON, "-c", TIMED_IMPORT.format(module=module)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    wall_time([PYTHON, "-c", "import penguins_platform.definitions"])  # warm the file cache
    samples = alternate(
        args.repeats,
        import_dagster=lambda: wall_time([PYTHON, "-c", "import dagster"]),
        import_definitions=lambda: wall_time(
            [PYTHON, "-c", "import penguins_platform.definitions"]
        ),
    )
    report("load ratio", "import_dagster", "import_definitions", samples, target=1.3)
    inside = alternate(
        args.repeats,
        import_dagster=lambda: import_seconds("dagster"),
        import_definitions=lambda: import_seconds("penguins_platform.definitions"),
    )
    report("load ratio, the import alone", "import_dagster", "import_definitions", inside,
           target=1.3)  # fmt: skip


if __name__ == "__main__":
    main()
