"""Everything MLflow needs to rebuild the model elsewhere: files, schema, requirements."""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from penguins_platform.ml import schema

# The serving environment needs these, pinned to what trained the model.
SERVING_DISTRIBUTIONS = ("mlflow", "keras", "jax", "jaxlib", "scikit-learn", "pandas", "numpy")
# The reference program's sample request.
SAMPLE_REQUEST = {
    "island": "Biscoe",
    "culmen_length_mm": 48.6,
    "culmen_depth_mm": 16.0,
    "flipper_length_mm": 230.0,
    "body_mass_g": 5800.0,
    "sex": "MALE",
}


def pinned_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in SERVING_DISTRIBUTIONS]


def signature() -> Any:
    """Every feature optional, since the imputers fill in what a request leaves out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("double" if name in schema.NUMERIC_FEATURES else "string", name, required=False)
            for name in schema.FEATURES
        ]
    )
    outputs = Schema([ColSpec("string", "prediction"), ColSpec("double", "confidence")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def stage_code(destination: Path) -> Path:
    """A copy of `penguins_platform.ml` under its own package name, and nothing else.

    The pyfunc class lives in `penguins_platform.ml.pyfunc`, so the model must ship that import
    path, but not the Dagster half of the package.
    """
    package_root = Path(__file__).resolve().parent.parent
    staged = destination / "penguins_platform"
    (staged / "ml").mkdir(parents=True)
    (staged / "__init__.py").write_text('"""The model-serving half of penguins_platform."""\n')
    for source in sorted((package_root / "ml").glob("*.py")):
        shutil.copy2(source, staged / "ml" / source.name)
    return staged
