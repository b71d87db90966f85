"""How a run executes its steps, chosen by `PENGUINS_EXECUTOR` where the code location loads.

- `in_process` (the default): every step in the run's own process. keras+jax, mlflow and
  scikit-learn cost seconds to import, and the multiprocess executor would pay that again in
  every step, which on this data is slower than the training itself.
- `multiprocess`: each step in a child process on the same machine. The local stand-in for a
  cluster: the cross-validation folds run apart, as they do below.
- `ecs`: each step as its own ECS task (dagster-aws `ecs_executor`); it needs the
  `EcsRunLauncher` (infra/dagster/dagster.yaml).
- `k8s`: each step as its own Kubernetes job (dagster-k8s `k8s_job_executor`); it needs the
  `K8sRunLauncher` (infra/helm/values.yaml).

The cluster executors are imported only when chosen, so loading the definitions stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from penguins_platform.settings import ExecutionSettings, variable

EXECUTOR_VARIABLE = variable(ExecutionSettings, "executor")
CHOICES = ("in_process", "multiprocess", "ecs", "k8s")


class ExecutorChoiceError(ValueError):
    """`PENGUINS_EXECUTOR` names no executor the platform knows."""


def executor_choice(environ: Mapping[str, str] | None = None) -> str:
    """`PENGUINS_EXECUTOR` of `environ` (the process's environment when None), normalised:
    in_process when it is unset."""
    return _normalised(ExecutionSettings.from_environ(environ).executor)


def _normalised(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def steps_run_in_process() -> bool:
    """Whether this run's steps share its process, one after another."""
    return executor_choice() == "in_process"


def executor_from_env(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor that `PENGUINS_EXECUTOR` names, in-process when it is unset."""
    given = ExecutionSettings.from_environ(environ).executor
    choice = _normalised(given)
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor
    if choice == "ecs":
        from dagster_aws.ecs.executor import ecs_executor

        return ecs_executor
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ExecutorChoiceError(
        f"{EXECUTOR_VARIABLE}={given!r} names no executor; choose one of {', '.join(CHOICES)}"
    )
