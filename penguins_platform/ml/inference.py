"""The fast prediction path: the fitted transformers and the network as plain numpy.

`ColumnTransformer.transform` on a one-row DataFrame costs milliseconds of pandas overhead,
and `keras.Model.predict` more, while the model itself is a few small matrix products. This
module extracts the fitted numbers once (imputation values, scaling, categories, weights) and
replays the same arithmetic in numpy: the same output to within float32 rounding, far
faster, and free of shared mutable state, so any number of threads can call it at once.

It imports only numpy: a serving process needs neither keras, scikit-learn nor pandas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from penguins_platform.ml import schema

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from penguins_platform.ml.features import FittedTransformers

PARAMETERS_FILE = "inference.json"
WEIGHTS_FILE = "inference.npz"
MAX_FLAGS_PER_ROW = 10


class InvalidRecordError(ValueError):
    """A request record that cannot be scored. Names the row and, where there is one, the field."""

    def __init__(self, row: int, message: str, field_name: str | None = None) -> None:
        self.row = row
        self.field = field_name
        where = f"row {row}" + (f", field {field_name!r}" if field_name else "")
        super().__init__(f"{where}: {message}")


class Prediction(TypedDict):
    """One answer of the model: the species, its probability, and what was unusual."""

    prediction: str
    confidence: float
    flags: list[str]


@dataclass
class EncodedBatch:
    """Model-ready features, plus what was unusual about each row and the fields ignored."""

    features: np.ndarray
    flags: list[list[str]]
    ignored_fields: list[list[str]]

    def all_ignored_fields(self) -> list[str]:
        return sorted({name for names in self.ignored_fields for name in names})


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_missing(value: object) -> bool:
    """None, NaN, or pandas' NA, without importing pandas."""
    return value is None or value != value or type(value).__name__ == "NAType"


def _numeric_value(value: object, row: int, name: str) -> float:
    """A JSON number, or NaN for null. Everything else is a client error, named."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise InvalidRecordError(row, f"expected a number, got the boolean {value}", name)
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise InvalidRecordError(
                row, f"expected a finite number, got {value}; send null for a missing value", name
            )
        return number
    if isinstance(value, str):
        raise InvalidRecordError(row, f"expected a number, got the text {_describe(value)}", name)
    if isinstance(value, dict | list):
        raise InvalidRecordError(row, "expected a number, got a nested object or list", name)
    raise InvalidRecordError(row, f"expected a number, got {type(value).__name__}", name)


def _category_value(value: object, row: int, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        raise InvalidRecordError(row, "expected text, got a nested object or list", name)
    raise InvalidRecordError(row, f"expected text, got {_describe(value)}", name)


@dataclass
class InferenceModel:
    """Fitted transformer numbers and network weights; `predict` replays both in numpy."""

    imputer_means: np.ndarray  # per numeric feature, what a missing value becomes
    scaler_means: np.ndarray
    scaler_scales: np.ndarray
    modes: dict[str, str]  # per categorical feature, what a missing value becomes
    categories: dict[str, list[str]]  # per categorical feature, the one-hot columns in order
    weights: list[tuple[np.ndarray, np.ndarray]]  # (kernel, bias) per dense layer
    species: tuple[str, ...] = schema.SPECIES
    _index: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {
            column: {value: i for i, value in enumerate(values)}
            for column, values in self.categories.items()
        }

    @classmethod
    def from_fitted(
        cls, transformers: FittedTransformers, keras_model: keras.Model
    ) -> InferenceModel:
        """Read the numbers out of fitted `FittedTransformers` and a trained Keras model."""
        numeric = transformers.features.named_transformers_["numeric"]
        categorical = transformers.features.named_transformers_["categorical"]
        imputer = numeric.named_steps["simpleimputer"]
        scaler = numeric.named_steps["standardscaler"]
        cat_imputer, encoder = categorical[0], categorical[1]
        kernels = keras_model.get_weights()
        return cls(
            imputer_means=np.asarray(imputer.statistics_, dtype=np.float64),
            scaler_means=np.asarray(scaler.mean_, dtype=np.float64),
            scaler_scales=np.asarray(scaler.scale_, dtype=np.float64),
            modes={
                c: str(v)
                for c, v in zip(schema.CATEGORICAL_FEATURES, cat_imputer.statistics_, strict=True)
            },
            categories={
                c: [str(v) for v in values]
                for c, values in zip(schema.CATEGORICAL_FEATURES, encoder.categories_, strict=True)
            },
            weights=[
                (np.asarray(kernels[i], dtype=np.float32), np.asarray(kernels[i + 1], np.float32))
                for i in range(0, len(kernels), 2)
            ],
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {
            "imputer_means": self.imputer_means,
            "scaler_means": self.scaler_means,
            "scaler_scales": self.scaler_scales,
        }
        for i, (kernel, bias) in enumerate(self.weights):
            arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = kernel, bias
        # `load` reads without pickle, so nothing pickled may be saved.
        np.savez(directory / WEIGHTS_FILE, allow_pickle=False, **arrays)
        parameters = {
            "modes": self.modes,
            "categories": self.categories,
            "species": list(self.species),
            "layers": len(self.weights),
        }
        (directory / PARAMETERS_FILE).write_text(json.dumps(parameters, indent=2))

    @classmethod
    def load(cls, directory: Path) -> InferenceModel:
        parameters = json.loads((directory / PARAMETERS_FILE).read_text())
        with np.load(directory / WEIGHTS_FILE) as arrays:
            return cls(
                imputer_means=arrays["imputer_means"],
                scaler_means=arrays["scaler_means"],
                scaler_scales=arrays["scaler_scales"],
                modes=parameters["modes"],
                categories=parameters["categories"],
                weights=[
                    (arrays[f"kernel_{i}"], arrays[f"bias_{i}"])
                    for i in range(parameters["layers"])
                ],
                species=tuple(parameters["species"]),
            )

    @property
    def feature_count(self) -> int:
        return len(schema.NUMERIC_FEATURES) + sum(len(v) for v in self.categories.values())

    def encode_records(self, records: Sequence[object]) -> EncodedBatch:
        """Validate JSON-like records and encode them exactly as the fitted transformer does.

        Absent and null features are imputed. Wrong types raise `InvalidRecordError` naming
        the row and field. Unknown categories and implausible measurements are scored, and
        flagged; unknown fields are ignored, and reported.
        """
        numeric = np.empty((len(records), len(schema.NUMERIC_FEATURES)), dtype=np.float64)
        onehot = np.zeros((len(records), self.feature_count - numeric.shape[1]), dtype=np.float64)
        flags: list[list[str]] = []
        ignored: list[list[str]] = []
        known = set(schema.FEATURES)
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                raise InvalidRecordError(
                    row, f"expected an object of penguin features, got {type(record).__name__}"
                )
            row_flags: list[str] = []
            for j, name in enumerate(schema.NUMERIC_FEATURES):
                value = _numeric_value(record.get(name), row, name)
                numeric[row, j] = value
                low, high = schema.PLAUSIBLE_RANGES[name]
                if not math.isnan(value) and not low <= value <= high:
                    row_flags.append(f"{name} {value:g} is outside the plausible {low:g}-{high:g}")
            offset = 0
            for name in schema.CATEGORICAL_FEATURES:
                category = _category_value(record.get(name), row, name)
                index = self._index[name]
                if category is None:
                    onehot[row, offset + index[self.modes[name]]] = 1.0
                elif category in index:
                    onehot[row, offset + index[category]] = 1.0
                else:
                    row_flags.append(f"unknown {name} {_describe(category)}")
                offset += len(index)
            ignored.append(
                [] if known.issuperset(record) else [str(k) for k in record if k not in known]
            )
            flags.append(row_flags[:MAX_FLAGS_PER_ROW])
        missing = np.isnan(numeric)
        if missing.any():
            numeric = np.where(missing, self.imputer_means, numeric)
        scaled = (numeric - self.scaler_means) / self.scaler_scales
        features = np.concatenate([scaled, onehot], axis=1).astype(np.float32)
        return EncodedBatch(features=features, flags=flags, ignored_fields=ignored)

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised encoding of a DataFrame with (some of) the feature columns."""
        rows = len(frame)
        numeric = np.empty((rows, len(schema.NUMERIC_FEATURES)), dtype=np.float64)
        for j, name in enumerate(schema.NUMERIC_FEATURES):
            if name not in frame:
                numeric[:, j] = np.nan
                continue
            try:
                numeric[:, j] = np.asarray(frame[name], dtype=np.float64)
            except (TypeError, ValueError):
                numeric[:, j] = [
                    math.nan if _is_missing(v) else _numeric_value(v, row, name)
                    for row, v in enumerate(frame[name].tolist())
                ]
        numeric = np.where(np.isnan(numeric), self.imputer_means, numeric)
        parts = [(numeric - self.scaler_means) / self.scaler_scales]
        for name in schema.CATEGORICAL_FEATURES:
            values = (
                frame[name].to_numpy(dtype=object) if name in frame else np.full(rows, None, object)
            )
            missing = np.array([_is_missing(v) for v in values], dtype=bool)
            values = np.where(missing, self.modes[name], values)
            categories = np.asarray(self.categories[name], dtype=object)
            parts.append((values[:, None] == categories[None, :]).astype(np.float64))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """The network's softmax output, computed as Keras does, in float32."""
        activations = features
        last = len(self.weights) - 1
        for i, (kernel, bias) in enumerate(self.weights):
            activations = activations @ kernel + bias
            if i < last:
                np.maximum(activations, 0.0, out=activations)
        shifted = activations - activations.max(axis=1, keepdims=True)
        exponentials = np.exp(shifted)
        return exponentials / exponentials.sum(axis=1, keepdims=True)

    def most_probable(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's most probable species (an object array) and that probability."""
        best = probabilities.argmax(axis=1)
        species = np.asarray(self.species, dtype=object)[best]
        return species, probabilities[np.arange(len(best)), best].astype(np.float64)

    def predict_records(self, records: Sequence[object]) -> tuple[list[Prediction], EncodedBatch]:
        """One {"prediction", "confidence", "flags"} per record, in order."""
        batch = self.encode_records(records)
        if not records:
            return [], batch
        species, confidence = self.most_probable(self.probabilities(batch.features))
        answers: list[Prediction] = [
            {"prediction": s, "confidence": float(c), "flags": f}
            for s, c, f in zip(species, confidence, batch.flags, strict=True)
        ]
        return answers, batch

    def smoke_test(self) -> None:
        """Refuse to serve weights that cannot give a valid answer (NaN, wrong shapes)."""
        probabilities = self.probabilities(self.encode_records([{}, {"island": "Biscoe"}]).features)
        if probabilities.shape != (2, len(self.species)) or not np.isfinite(probabilities).all():
            raise ValueError("the model gives no valid probabilities for a sample row")
        if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4):
            raise ValueError("the model's probabilities do not sum to one")
