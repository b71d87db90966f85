"""`make rehearse`: how long the production topology takes to start, and what a training run
costs through it, against the same run with `make train`.

- Start-up: from nothing (no moto, no database, no process) to a webserver that lists the
  code location, against `dagster-webserver` on the local instance (the same definitions,
  loaded in-process) in the same run. Absolute seconds are context on this noisy 2-core box.
- Training: `training_job` launched through the rehearsal's GraphQL API, where the run is an
  ECS task and every step one more (PENGUINS_EXECUTOR=ecs, as the template sets), against
  `python -m penguins_platform train` with the same recipe, both timed to the run's end.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import PYTHON, TrainingSandbox, wall_time


def webserver_start(work: Path, sandbox: TrainingSandbox) -> float:
    """Seconds until a local `dagster-webserver` answers with its code location loaded."""
    import json
    import subprocess
    import urllib.request

    from penguins_platform.project import PROJECT_ROOT
    from penguins_platform.serving.service import free_port, terminate_group

    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [str(Path(PYTHON).parent / "dagster-webserver"), "-p", str(port),
         "-w", str(PROJECT_ROOT / "workspace.yaml")],
        env={**sandbox.env(), "PATH": str(Path(PYTHON).parent) + ":/usr/bin:/bin"},
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    query = json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries "
                        "{ loadStatus } } } }"}).encode()  # fmt: skip
    try:
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=query,
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
                with urllib.request.urlopen(request, timeout=5) as reply:
                    entries = json.loads(reply.read())["data"]["workspaceOrError"]
                    if all(e["loadStatus"] == "LOADED" for e in entries["locationEntries"]):
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.25)
    finally:
        terminate_group(process.pid, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--folds", type=int, default=None, help="default: the recipe's")
    args = parser.parse_args()

    from penguins_platform.defs.jobs import training_run_config
    from penguins_platform.rehearsal.topology import Rehearsal

    work = Path(tempfile.mkdtemp(prefix="penguins-bench-"))
    recipe = {"epochs": args.epochs, "folds": args.folds}
    flags = [f"--{name}={value}" for name, value in recipe.items() if value is not None]
    try:
        sandbox = TrainingSandbox(work)
        wall_time([PYTHON, "-m", "penguins_platform", "train", *flags], sandbox.env())  # warm
        local_start = webserver_start(work, sandbox)
        make_train = wall_time([PYTHON, "-m", "penguins_platform", "train", *flags], sandbox.env())
        with Rehearsal(work / "rehearsal") as rehearsal:
            start = rehearsal.startup_seconds
            launched = time.monotonic()
            run_id = rehearsal.launch(
                "training_job", training_run_config(**recipe).to_config_dict()
            )
            rehearsal.wait_for_run(run_id, timeout=1800)
            rehearsed = time.monotonic() - launched
            assert rehearsal.agent is not None
            steps = sum("execute_step" in t.command for t in rehearsal.agent.tasks.values())
        print(f"rehearsal start-up: {start / local_start:.2f} (reported, no target)")
        print(f"  local dagster-webserver, code location loaded: {local_start:.2f} s")
        print(f"  rehearsal, from nothing to the webserver with its location: {start:.2f} s")
        print(f"rehearsed training run: {rehearsed / make_train:.2f} (reported, no target)")
        print(f"  make train: {make_train:.2f} s")
        print(f"  training_job through the rehearsal ({steps} step tasks): {rehearsed:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
