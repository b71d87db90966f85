"""Load ratio: importing the Definitions over importing dagster, in fresh interpreters.

Dagster imports the definitions for every run, sensor tick and UI reload, so this is a
cost users pay constantly. Target: <= 1.3.
"""

from __future__ import annotations

import argparse

from common import PYTHON, alternate, report, wall_time


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


if __name__ == "__main__":
    main()
