"""Everything MLflow needs to rebuild the model elsewhere: files, schema, requirements."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from penguins_platform.ml import schema

if TYPE_CHECKING:
    import keras
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.tracking import MlflowClient

    from penguins_platform.ml.features import FittedTransformers

# The serving environment needs these, pinned to what trained the model.
SERVING_DISTRIBUTIONS = ("mlflow", "keras", "jax", "jaxlib", "scikit-learn", "pandas", "numpy")


def pinned_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in SERVING_DISTRIBUTIONS]


def signature() -> ModelSignature:
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
    """`destination/penguins_platform/ml`: the model code under its import path, and nothing else.

    The pyfunc class lives in `penguins_platform.ml.pyfunc`, so the model must ship that import
    path, but not the Dagster half of the package.
    """
    package_root = Path(__file__).resolve().parent.parent
    staged = destination / "penguins_platform"
    (staged / "ml").mkdir(parents=True)
    (staged / "__init__.py").write_text('"""The model-serving half of penguins_platform."""\n')
    for source in sorted((package_root / "ml").glob("*.py")):
        shutil.copy2(source, staged / "ml" / source.name)
    return destination


def log_pyfunc_model(
    run_id: str,
    model: keras.Model,
    transformers: FittedTransformers,
    example: pd.DataFrame,
    registered_model_name: str,
) -> str:
    """Log the pyfunc model to MLflow run `run_id` and register it; returns the new version.

    Uses the fluent API against the tracking and registry URIs already set by the caller.
    """
    import joblib
    import mlflow

    from penguins_platform.ml.inference import InferenceModel
    from penguins_platform.ml.pyfunc import (
        INFERENCE_ARTIFACT,
        MODEL_ARTIFACT,
        TRANSFORMERS_ARTIFACT,
    )

    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        model_path = staging / "model.keras"
        transformers_path = staging / "transformers.joblib"
        model.save(model_path)
        joblib.dump(transformers, transformers_path)
        InferenceModel.from_fitted(transformers, model).save(staging / INFERENCE_ARTIFACT)
        code = stage_code(staging / "code")
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code / "penguins_platform" / "ml" / "registered_model.py"),
                artifacts={
                    MODEL_ARTIFACT: str(model_path),
                    TRANSFORMERS_ARTIFACT: str(transformers_path),
                    INFERENCE_ARTIFACT: str(staging / INFERENCE_ARTIFACT),
                },
                code_paths=[str(code / "penguins_platform")],
                signature=signature(),
                input_example=example,
                pip_requirements=pinned_requirements(),
                registered_model_name=registered_model_name,
            )
    return str(info.registered_model_version)


def publish_version(
    client: MlflowClient, name: str, version: str, tags: Mapping[str, str], alias: str
) -> None:
    """Tag the version, then move `alias` to it. On failure the half-published version goes.

    A version without its tags and alias must not linger for a deployment sensor to find.
    """
    try:
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.set_registered_model_alias(name, alias, version)
    except Exception:
        client.delete_model_version(name, version)
        raise
