"""Where the embedded defaults live: everything a fresh clone needs, inside the clone.

A user who sets nothing gets a Dagster instance, an MLflow store and a JAX cache under the
project directory, so `make train` works offline and `make dev` sees what it made.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster"
DEFAULT_MLFLOW_DIR = PROJECT_ROOT / ".mlflow"
DEFAULT_JAX_CACHE = PROJECT_ROOT / ".cache" / "jax"
DEFAULT_SERVING_DIR = PROJECT_ROOT / ".serving"
DEFAULT_REPORT_DIR = PROJECT_ROOT / ".monitoring" / "reports"
INSTANCE_TEMPLATE = PROJECT_ROOT / "infra" / "dagster" / "local.yaml"
# The shared instance on ECS (Postgres, EcsRunLauncher); the image puts it in DAGSTER_HOME.
PRODUCTION_INSTANCE = PROJECT_ROOT / "infra" / "dagster" / "dagster.yaml"


def default_tracking_uri() -> str:
    return f"sqlite:///{DEFAULT_MLFLOW_DIR / 'mlflow.db'}"


def resolve_path(location: str) -> Path:
    """A relative path is taken from the project root, so it means the same from any cwd."""
    path = Path(location).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def prepare_dagster_home() -> Path:
    """Point DAGSTER_HOME at `.dagster/` unless set, and give a new instance our dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_DAGSTER_HOME)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and INSTANCE_TEMPLATE.exists():
        config.write_text(INSTANCE_TEMPLATE.read_text())
    return home


def prepare_jax_cache() -> None:
    """Reuse compiled XLA programs across runs: repeat fits skip compilation. And choose
    Keras's JAX backend for the whole process: a step that runs in a process of its own (an
    ECS task, a pod) unpickles the trained model before any of our code imports Keras, and
    Keras's default backend, TensorFlow, is not installed."""
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(DEFAULT_JAX_CACHE))
    os.environ.setdefault("KERAS_BACKEND", "jax")
