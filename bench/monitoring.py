"""Monitoring cost against captured rows: `monitoring_job` on capture stores of 500, 5,000 and
50,000 rows, all in this process, on one temporary Dagster instance and MLflow store.

Prints the job's wall time at 5,000 and at 50,000 rows over its time at 500 rows (target
<= 2.0 for 50,000: the fixed cost, Evidently's above all, should outweigh the rows), then, for
context, the time of each asset step at each size, from the run's step events.

Setup, not timed: a small training run puts `penguins` in the instance and registers version
1, which the captured rows name, so the report is logged to a real version's run. Each run
gets a fresh copy of its store, because the first run writes the labels back; so every run
labels every row. A warm-up run pays Evidently's one-off import first. Each timed run starts
after a full garbage collection, as a real run starts in a fresh process: otherwise collecting
the earlier runs' garbage over the setup's large heap (about 1.3 s) lands in whichever run
trips it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from capture_store import build_store, capture_rows
from common import alternate, report

from penguins_platform_tests.servers import free_port

if TYPE_CHECKING:
    import dagster as dg

    from penguins_platform.defs.resources import MlflowTracking

SIZES = (500, 5_000, 50_000)
VERSION = "1"  # the version the small training run registers
RECENT = timedelta(hours=1)  # the rows' captured_at spread, newest now: capture_health passes
STEPS = ("production_data", "ground_truth_labels", "monitoring_report")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def recent_rows(count: int, now: datetime, seed: int) -> list[tuple]:
    """capture_store's rows, stamped over the last hour and answered by VERSION."""
    step = RECENT / count
    return [
        (row[0], row[1], (now - RECENT + step * i).isoformat(timespec="microseconds"), VERSION,
         *row[4:])
        for i, row in enumerate(capture_rows(count, now, seed=seed))
    ]  # fmt: skip


def definitions(**resources: object) -> dg.Definitions:
    """The platform's definitions with some resources swapped for the bench's own."""
    import dagster as dg

    from penguins_platform.definitions import defs

    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources={**(defs.resources or {}), **resources},
    )


def train(instance: dg.DagsterInstance, mlflow: MlflowTracking) -> None:
    """`penguins` in the instance and version 1 in the registry, as cheaply as training goes."""
    from penguins_platform.defs.jobs import training_run_config

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # its setup chatter, not the bench's
    job = definitions(mlflow=mlflow).resolve_job_def("training_job")
    with contextlib.redirect_stderr(io.StringIO()) as chatter:
        result = job.execute_in_process(
            run_config=training_run_config(epochs=5, folds=2, threshold=0.0, log_level="ERROR"),
            instance=instance,
            raise_on_error=False,
        )
    if not result.success:
        raise RuntimeError(f"the setup training run failed:\n{chatter.getvalue()[-4000:]}")
    mlflow.client().get_model_version(mlflow.registered_model_name, VERSION)


class Monitor:
    """Materializes `monitoring_job` on a fresh copy of one size's store; keeps step times."""

    def __init__(
        self,
        work: Path,
        instance: dg.DagsterInstance,
        mlflow: MlflowTracking,
        template: Path,
        rows: int,
    ) -> None:
        from penguins_platform.defs.resources import LocalEndpoint, Monitoring

        self.instance, self.template, self.rows = instance, template, rows
        self.store = work / f"run-{rows}.db"
        endpoint = LocalEndpoint(
            port=free_port(),  # nothing answers there: no live endpoint counters to ask
            state_dir=str(work / "serving"),
            capture_uri=f"sqlite:///{self.store}",
        )
        monitoring = Monitoring(report_dir=str(work / "reports"), ground_truth_quality=0.8)
        defs = definitions(mlflow=mlflow, local=endpoint, monitoring=monitoring)
        self.job = defs.resolve_job_def("monitoring_job")
        self.steps: dict[str, list[float]] = {step: [] for step in STEPS}

    def __call__(self) -> float:
        for leftover in self.store.parent.glob(f"{self.store.name}*"):
            leftover.unlink()
        shutil.copy(self.template, self.store)
        gc.collect()
        start = time.perf_counter()
        result = self.job.execute_in_process(
            run_config={"ops": {"production_data": {"config": {"rows": self.rows}}}, **QUIET},
            instance=self.instance,
            raise_on_error=False,
        )
        elapsed = time.perf_counter() - start
        if not result.success:
            raise RuntimeError(f"monitoring run {result.run_id} on {self.rows} rows failed")
        stats = {s.step_key: s for s in self.instance.get_run_step_stats(result.run_id)}
        for step in STEPS:
            began, ended = stats[step].start_time, stats[step].end_time
            assert began is not None and ended is not None, f"{step} did not finish"
            self.steps[step].append(ended - began)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import dagster as dg

    from penguins_platform.defs.resources import MlflowTracking

    work = Path(tempfile.mkdtemp(prefix="penguins-bench-monitoring-"))
    try:
        mlflow = MlflowTracking(
            tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
            experiment_name="penguins-bench",
            registered_model_name="penguins-bench",
            artifact_location=(work / "artifacts").as_uri(),
        )
        with dg.instance_for_test(temp_dir=str(work)) as instance:
            start = time.perf_counter()
            train(instance, mlflow)
            now = datetime.now(UTC)
            templates = {}
            for seed, rows in enumerate(SIZES):
                templates[rows] = work / f"store-{rows}.db"
                build_store(templates[rows], recent_rows(rows, now, seed))
            print(f"setup: trained and registered version {VERSION}, built the stores in "
                  f"{time.perf_counter() - start:.1f} s")  # fmt: skip

            warm_up = Monitor(work, instance, mlflow, templates[500], 500)()
            print(f"warm-up run on 500 rows (imports Evidently, not counted): {warm_up:.2f} s")

            runs = {f"rows_{n}": Monitor(work, instance, mlflow, templates[n], n) for n in SIZES}
            samples = alternate(args.repeats, **runs)
            title = "monitoring_job wall time, {} rows over 500 (labeling every row)"
            report(title.format("5,000"), "rows_500", "rows_5000", samples, float("inf"))
            report(title.format("50,000"), "rows_500", "rows_50000", samples, target=2.0)
            print("step times, median seconds (STEP_START to STEP_SUCCESS):")
            print(f"  {'step':<22}" + "".join(f"{n:>10,}" for n in SIZES))
            for step in STEPS:
                medians = [statistics.median(runs[f"rows_{n}"].steps[step]) for n in SIZES]
                print(f"  {step:<22}" + "".join(f"{m:>10.2f}" for m in medians))
            overhead = [
                statistics.median(samples[f"rows_{n}"])
                - sum(statistics.median(runs[f"rows_{n}"].steps[s]) for s in STEPS)
                for n in SIZES
            ]
            print(f"  {'outside the steps':<22}" + "".join(f"{m:>10.2f}" for m in overhead))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
