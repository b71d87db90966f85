"""The registered model: an MLflow pyfunc that takes penguin records and returns species.

MLflow stores the `.keras` network and the fitted transformers as artifacts, and a copy of
`penguins_platform.ml` as code, so a serving process needs neither Dagster nor this
repository. The model is logged "from code" (`registered_model.py`), not cloudpickled, so
loading it runs reviewed source instead of deserialising an object.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

MODEL_ARTIFACT = "model"
TRANSFORMERS_ARTIFACT = "transformers"


class PenguinsModel(mlflow.pyfunc.PythonModel):
    """Loads the network and transformers from the model's artifacts, then predicts species."""

    def __init__(self) -> None:
        self.model: Any = None
        self.transformers: Any = None

    def load_context(self, context: Any) -> None:
        import joblib

        from penguins_platform.ml.model import import_keras

        keras = import_keras()
        self.model = keras.models.load_model(context.artifacts[MODEL_ARTIFACT])
        self.transformers = joblib.load(context.artifacts[TRANSFORMERS_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """One row per input record: the species and the softmax probability behind it."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if frame.empty:
            return pd.DataFrame({"prediction": [], "confidence": []})
        x = self.transformers.transform_features(frame)
        probabilities = np.asarray(self.model.predict(x, verbose=0))
        indices = probabilities.argmax(axis=1)
        return pd.DataFrame(
            {
                "prediction": self.transformers.decode_target(indices),
                "confidence": probabilities.max(axis=1).astype("float64"),
            }
        )
