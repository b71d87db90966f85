"""The script MLflow runs to build the registered model ("models from code")."""

from mlflow.models import set_model

from penguins_platform.ml.pyfunc import PenguinsModel

set_model(PenguinsModel())
