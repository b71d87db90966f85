"""The pinned environment: every integration imports, and the definitions load light."""

import importlib
import json
import subprocess
import sys

import pytest

INTEGRATIONS = [
    "dagster",
    "dagster_webserver",
    "dagster_aws.s3",
    "mlflow",
    "keras",
    "jax",
    "sklearn",
    "pandas",
    "boto3",
    "azure.ai.ml",
    "azure.identity",
    "starlette",
    "uvicorn",
    "moto",
]
HEAVY = ["keras", "jax", "mlflow", "sklearn", "pandas", "numpy", "dagster_aws", "matplotlib"]


@pytest.mark.parametrize("module", INTEGRATIONS)
def test_integration_imports(module):
    importlib.import_module(module)


def test_keras_is_on_jax():
    from penguins_platform.ml.model import import_keras

    assert import_keras().backend.backend() == "jax"


def test_loading_the_definitions_imports_nothing_heavy():
    """Dagster imports the definitions for every run, sensor tick and UI reload."""
    probe = (
        "import json, sys; import penguins_platform.definitions; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == []
