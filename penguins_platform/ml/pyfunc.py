"""The registered model: an MLflow pyfunc that takes penguin records and returns species.

MLflow stores the `.keras` network, the fitted transformers and their numpy extract
(`inference/`) as artifacts, and a copy of `penguins_platform.ml` as code, so a serving
process needs neither Dagster nor this repository. Prediction runs on the numpy extract
(`ml/inference.py`): no keras, scikit-learn or pandas work per request, and no shared mutable
state, so concurrent callers are safe. The model is logged "from code"
(`registered_model.py`), not cloudpickled, so loading it runs reviewed source.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from penguins_platform.ml.inference import InferenceModel

MODEL_ARTIFACT = "model"
TRANSFORMERS_ARTIFACT = "transformers"
INFERENCE_ARTIFACT = "inference"


class PenguinsModel(PythonModel):
    """Species and confidence per input row, in order, from the numpy inference model."""

    def __init__(self) -> None:
        self.inference: InferenceModel | None = None

    def load_context(self, context: PythonModelContext) -> None:
        self.inference = InferenceModel.load(Path(context.artifacts[INFERENCE_ARTIFACT]))

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,  # MLflow reads this hint: keep it the DataFrame it passes
        params: dict[str, object] | None = None,
    ) -> pd.DataFrame:
        """A DataFrame (or a list of records) in; one prediction and confidence per row out."""
        if self.inference is None:
            raise RuntimeError("the model is not loaded; load it with mlflow.pyfunc.load_model")
        if isinstance(model_input, pd.DataFrame):
            features = self.inference.encode_frame(model_input)
        else:
            features = self.inference.encode_records(list(model_input)).features
        if len(features) == 0:
            return pd.DataFrame({"prediction": pd.Series([], dtype=object), "confidence": []})
        species, confidence = self.inference.most_probable(self.inference.probabilities(features))
        return pd.DataFrame({"prediction": species, "confidence": confidence})
