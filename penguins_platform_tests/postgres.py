"""Production-mode test helpers around the throwaway PostgreSQL cluster
(`penguins_platform/rehearsal/postgres.py`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from penguins_platform.project import PRODUCTION_INSTANCE
from penguins_platform.rehearsal.postgres import (
    PostgresCluster,
    process_is_running,
    running_cluster,
)

__all__ = [
    "PostgresCluster",
    "postgres_home",
    "process_is_running",
    "running_cluster",
]


def postgres_home(directory: Path, **sections: object) -> Path:
    """A DAGSTER_HOME whose storage is the production instance's own Postgres block
    (infra/dagster/dagster.yaml), with runs launched on this machine, plus `sections`."""
    production = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
    config = {
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
        "storage": production["storage"],
        **sections,
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dagster.yaml").write_text(yaml.safe_dump(config))
    return directory
