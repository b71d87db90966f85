"""What the challenger gate adds to `make train`: its steps' time over the whole command's.

`python -m penguins_platform train` runs as a user runs it (a fresh process, imports and all),
several times on one MLflow store, so every run after the first has a champion to beat: the
gate then loads, predicts and evaluates two registered models with MLflow. The gate's cost is
the time of its two steps (`beats_champion` and `champion`), read from the run's own step
records; the baseline is the wall time of the same command. The registration step, which
now also records the training and holdout rows, is printed beside it for context. Target:
the gate <= 10% of `make train`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from common import PYTHON, TrainingSandbox, wall_time

GATE_STEPS = ("registered_model_version_beats_champion", "champion")
# Seeds whose models differ, so the gate has real work: some win, some lose.
SEEDS = (42, 4, 7, 5, 1, 2)


def step_seconds(home: Path, run_id: str) -> dict[str, float]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        stats = instance.get_run_step_stats(run_id)
        return {
            s.step_key: (s.end_time or 0.0) - (s.start_time or 0.0)
            for s in stats
            if s.start_time is not None
        }


def latest_run(home: Path) -> str:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs(limit=1)
        return run.run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4, help="trainings on one store (2 or more)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="penguins-bench-"))
    try:
        sandbox = TrainingSandbox(work)
        env = sandbox.env()  # one store for every run, so later runs have a champion
        wall_time([PYTHON, "-m", "penguins_platform", "train", "--seed", "3"], env)  # warm up
        shares, gates, totals, registrations = [], [], [], []
        for seed in SEEDS[: args.runs]:
            total = wall_time(
                [PYTHON, "-m", "penguins_platform", "train", "--seed", str(seed)], env
            )
            steps = step_seconds(sandbox.home, latest_run(sandbox.home))
            gate = sum(steps.get(step, 0.0) for step in GATE_STEPS)
            totals.append(total)
            gates.append(gate)
            shares.append(gate / total)
            registrations.append(steps.get("registered_model_version", 0.0))
        share = statistics.median(shares)
        verdict = "meets" if share <= 0.10 else "MISSES"
        print(f"gate share of make train: {share:.3f} ({verdict} target <= 0.10)")
        print(
            f"  gate steps: median {statistics.median(gates):.2f} s  "
            f"[{', '.join(f'{g:.2f}' for g in gates)}]"
        )
        print(
            f"  make train: median {statistics.median(totals):.2f} s  "
            f"[{', '.join(f'{t:.2f}' for t in totals)}]"
        )
        print(f"  registration step (for context): median {statistics.median(registrations):.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
