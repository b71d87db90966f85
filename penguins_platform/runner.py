"""Running a job of the definitions in this process, as the CLI's commands do.

A run executes in-process on the local instance (the one `make dev` opens), so it shows in
the UI like any other. The terminal gets the platform's own progress lines and, when a run
fails, a short summary of why; Dagster's full log stays on the run's page, and `verbose`
prints it here too. No run hangs forever: each stops at its job's `dagster/max_runtime`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg


class RunTimedOut(Exception):
    """The run outlived its `dagster/max_runtime` and was interrupted."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the in-process run after `seconds`, as the daemon's run monitoring would a
    launched one: Dagster turns the interrupt into a failed run, and this raises.

    The interrupt is sent again every second until the run ends. Dagster holds an interrupt
    that lands in its own bookkeeping (writing an event, storing an output) until the next
    step's code runs, and a nested hold can drop it; one signal alone could then let the run
    go on to register a model.
    """
    expired = threading.Event()
    stopped = threading.Event()
    sending = threading.Lock()

    def interrupt() -> None:
        if stopped.wait(seconds):
            return
        expired.set()
        while True:
            with sending:
                if stopped.is_set():
                    return
                os.kill(os.getpid(), signal.SIGINT)
            if stopped.wait(1.0):
                return

    threading.Thread(target=interrupt, name="max-runtime", daemon=True).start()
    try:
        try:
            yield
        finally:
            with sending:  # no signal is sent after this
                stopped.set()
    except KeyboardInterrupt:
        if expired.is_set():
            raise RunTimedOut from None
        raise
    if expired.is_set():
        raise RunTimedOut


def run_job(
    job_name: str,
    run_config: dg.RunConfig,
    kind: str,
    *,
    verbose: bool = False,
    max_runtime: float | None = None,
    tags: Mapping[str, str] | None = None,
    settled: Callable[[dg.ExecuteInProcessResult], bool] | None = None,
) -> dg.ExecuteInProcessResult | None:
    """Run `job_name` in this process on the local instance. Returns the result of a run
    that succeeded, or of a failed one that `settled` accepts (a challenger that lost its
    gate: the run did its job); after saying why (`kind` names the run: "Training"), None for
    one that failed otherwise or ran out of time."""
    import dagster as dg

    from penguins_platform.definitions import defs
    from penguins_platform.defs import event_log
    from penguins_platform.defs.jobs import MAX_RUNTIME_TAG

    job = defs.resolve_job_def(job_name)
    if not verbose:
        job = event_log.with_quiet_console(job)
    # Named always: a run config that names no logger gets Dagster's default console.
    level = "DEBUG" if verbose else "INFO"
    run_config.loggers = {"console": {"config": {"log_level": level}}}
    limit = max_runtime or float(job.tags[MAX_RUNTIME_TAG])
    with dg.DagsterInstance.get() as instance:
        try:
            with _mlflow_silenced(not verbose), time_limit(limit):
                result = job.execute_in_process(
                    run_config=run_config,
                    instance=instance,
                    tags={**(tags or {}), MAX_RUNTIME_TAG: f"{limit:g}"},
                    raise_on_error=False,
                )
        except RunTimedOut:
            print(
                f"{job_name} ran over its limit of {limit:g} s ({MAX_RUNTIME_TAG}) and was "
                "stopped; raise it with --max-runtime",
                file=sys.stderr,
            )
            return None
    if not result.success and not (settled and settled(result)):
        report_failure(kind, result)
        return None
    return result


@contextmanager
def _mlflow_silenced(silence: bool) -> Iterator[None]:
    """Keep MLflow's own lines off the terminal while the platform's progress prints there:
    its INFO and WARNING log lines, and the ones it prints to stderr past any log level
    ("Successfully registered model…", "Created version…"). `--verbose` keeps them.

    MLflow's own switch for event logs counts who asked, as its internal callers use it
    too: a plain `disable_logging()` is undone by the first of them to finish.
    """
    if not silence:
        yield
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # read when MLflow is imported
    from mlflow.utils.autologging_utils.logging_and_warnings import (
        MlflowEventsAndWarningsBehaviorGlobally as EventsAndWarnings,
    )

    with EventsAndWarnings(disable_event_logs=True, disable_warnings=False, reroute_warnings=False):
        yield


def report_failure(kind: str, result: dg.ExecuteInProcessResult) -> None:
    """Print why a run failed, one line a reason, and where its whole log is."""
    from penguins_platform.defs import event_log

    print(f"{kind} run {result.run_id} failed:", file=sys.stderr)
    for reason in event_log.failure_reasons(result.all_events):
        print(f"  {reason}", file=sys.stderr)
    print("The run's page in `make dev` has its whole log; `--verbose` prints it.", file=sys.stderr)


def database_error(error: BaseException) -> str | None:
    """The database's own words when `error` comes from the instance's storage going away."""
    seen: BaseException | None = error
    while seen is not None:
        if type(seen).__name__ == "OperationalError" and "sql" in type(seen).__module__:
            return " ".join(str(getattr(seen, "orig", None) or seen).split())
        seen = seen.__cause__ or seen.__context__
    return None
