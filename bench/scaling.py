"""Scaling: the main job, and its plain-Python floor, on 1x, 10x and 100x the penguins.

The larger datasets are made the way a user would try it: the penguins resampled with
replacement, seeded, with a little Gaussian noise (2% of each measurement's spread) so no
two rows repeat exactly. At each size it times `python -m penguins_platform train --data …`
against `bench/plain_training.py --data …` (fresh processes, imports included, alternated),
then prints:

- the main job ratio over the floor at each size (target <= 1.3);
- each one's growth from 1x (target for the main job at 100x: <= 3.0);
- the Keras fit phase at the largest size: one dispatch a step (`steps_per_execution=1`,
  Keras's own `fit`) over the default and a few other settings (target >= 3.0 faster);
- how the folds run best at the largest size: one after another, two threads in the run's
  process (the default on two cores), or a process per fold (the multiprocess executor).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import PYTHON, REPO_ROOT, TrainingSandbox, alternate, report, wall_time

NOISE = 0.02  # of each measurement's standard deviation
MEASUREMENTS = ("culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g")


def make_dataset(factor: int, path: Path, seed: int = 7) -> Path:
    """The penguins resampled to `factor` times as many rows, with noise on the measurements."""
    import numpy as np
    import pandas as pd

    source = pd.read_csv(REPO_ROOT / "data" / "penguins.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    rows = source.iloc[rng.integers(0, len(source), size=len(source) * factor)].copy()
    for column in MEASUREMENTS:
        values = pd.to_numeric(rows[column].replace({"NA": None, "": None}), errors="coerce")
        noisy = values + rng.normal(0, NOISE * values.std(), size=len(values))
        decimals = 0 if column in ("flipper_length_mm", "body_mass_g") else 1
        rows[column] = noisy.round(decimals).map(
            lambda v, d=decimals: "NA" if pd.isna(v) else (f"{v:.{d}f}")
        )
    rows.to_csv(path, index=False)
    return path


def time_fit_phase(data: Path, repeats: int, jax_cache: Path) -> dict[str, list[float]]:
    """Seconds of `train_model` alone (the default recipe) for each steps_per_execution,
    with the JAX compilation cache a run has."""
    import os

    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(jax_cache)
    from penguins_platform import defaults
    from penguins_platform.ml.cleaning import clean_penguins, read_penguins_csv
    from penguins_platform.ml.features import FittedTransformers
    from penguins_platform.ml.model import TrainingParameters, train_model

    penguins = clean_penguins(read_penguins_csv(data.read_bytes(), str(data)), seed=defaults.SEED)
    transformers = FittedTransformers.fit(penguins)
    x, y = transformers.transform_features(penguins), transformers.encode_target(penguins)

    def fit(steps: int | None) -> float:
        start = time.perf_counter()
        train_model(x, y, TrainingParameters(steps_per_execution=steps))
        return time.perf_counter() - start

    settings = {"per_step": 1, "steps_16": 16, "steps_256": 256, "whole_epoch": None}
    for steps in settings.values():
        fit(steps)  # compile once, as every later fit of a run finds it in the JAX cache
    return alternate(repeats, **{name: (lambda s=s: fit(s)) for name, s in settings.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="penguins-scaling-"))
    try:
        sandbox = TrainingSandbox(work)
        data = {
            factor: REPO_ROOT / "data" / "penguins.csv"
            if factor == 1
            else make_dataset(factor, work / f"penguins-{factor}x.csv")
            for factor in args.factors
        }
        main_job: dict[int, list[float]] = {}
        floor: dict[int, list[float]] = {}
        for factor, path in data.items():

            def plain(path: Path = path) -> float:
                return wall_time([PYTHON, "bench/plain_training.py", "--data", str(path)],
                                 sandbox.env())  # fmt: skip

            def dagster_job(path: Path = path, **env: str) -> float:
                command = [PYTHON, "-m", "penguins_platform", "train", "--data", str(path)]
                return wall_time(command, sandbox.env(**env))

            if factor == args.factors[0]:
                plain(), dagster_job()  # warm the JAX cache and the file cache
            rows = sum(1 for _ in path.open()) - 1
            print(f"\n{factor}x: {rows:,} rows, {path.stat().st_size / 1024:,.0f} KiB")
            samples = alternate(args.repeats, plain_python=plain, dagster_main_job=dagster_job)
            report(f"main job ratio at {factor}x", "plain_python", "dagster_main_job", samples,
                   target=1.3)  # fmt: skip
            main_job[factor], floor[factor] = samples["dagster_main_job"], samples["plain_python"]

        base = args.factors[0]
        print(f"\ngrowth from {base}x (median over median)")
        for factor in args.factors[1:]:
            job = statistics.median(main_job[factor]) / statistics.median(main_job[base])
            plain_growth = statistics.median(floor[factor]) / statistics.median(floor[base])
            target = " (target <= 3.0)" if factor == 100 else ""
            print(f"  {factor}x: main job {job:.2f}{target}, plain floor {plain_growth:.2f}")

        largest = args.factors[-1]
        print(f"\nKeras fit phase at {largest}x, the default recipe")
        fits = time_fit_phase(data[largest], args.repeats, work / "jax-cache")
        for name in ("whole_epoch", "steps_256", "steps_16"):
            ratio = statistics.median(fits["per_step"]) / statistics.median(fits[name])
            verdict = "meets" if ratio >= 3.0 else "MISSES"
            print(f"  per_step over {name}: {ratio:.2f}x faster ({verdict} target >= 3.0)")
        for name, values in fits.items():
            print(f"    {name}: median {statistics.median(values):.2f} s  "
                  f"[{', '.join(f'{v:.2f}' for v in values)}]")  # fmt: skip

        print(f"\nfolds at {largest}x: the main job with each way of running them")
        path = data[largest]
        command = [PYTHON, "-m", "penguins_platform", "train", "--data", str(path)]
        ways = alternate(
            args.repeats,
            one_after_another=lambda: wall_time(command, sandbox.env(PENGUINS_FOLD_WORKERS="1")),
            threads=lambda: wall_time(command, sandbox.env(PENGUINS_FOLD_WORKERS="0")),
            process_per_fold=lambda: wall_time(
                command, sandbox.env(PENGUINS_EXECUTOR="multiprocess")
            ),
        )
        report("threads over one after another", "one_after_another", "threads", ways,
               target=float("inf"))  # fmt: skip
        report("a process per fold over one after another", "one_after_another",
               "process_per_fold", ways, target=float("inf"))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
