"""Cross-validation: how well the training recipe generalises, measured without leakage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from penguins_platform.ml import schema
from penguins_platform.ml.features import FittedTransformers
from penguins_platform.ml.model import (
    TrainingParameters,
    evaluate_model,
    predict_indices,
    train_model,
)


@dataclass(frozen=True)
class FoldScore:
    fold: int
    train_rows: int
    test_rows: int
    accuracy: float
    loss: float


@dataclass
class CrossValidationScores:
    """Per-fold scores, their summary, and a confusion matrix over every held-out row."""

    folds: list[FoldScore]
    confusion_matrix: list[list[int]] = field(default_factory=list)

    @property
    def accuracy_mean(self) -> float:
        return float(np.mean([f.accuracy for f in self.folds]))

    @property
    def accuracy_std(self) -> float:
        return float(np.std([f.accuracy for f in self.folds]))

    @property
    def loss_mean(self) -> float:
        return float(np.mean([f.loss for f in self.folds]))

    @property
    def loss_std(self) -> float:
        return float(np.std([f.loss for f in self.folds]))

    def summary(self) -> dict[str, float]:
        return {
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "loss_mean": self.loss_mean,
            "loss_std": self.loss_std,
        }


FoldCallback = Callable[[FoldScore], None]


def cross_validate(
    df: pd.DataFrame,
    folds: int,
    parameters: TrainingParameters,
    on_fold_end: FoldCallback | None = None,
) -> CrossValidationScores:
    """Shuffled, seeded K-fold. Each fold fits its own transformers on its training rows only."""
    from sklearn.model_selection import KFold

    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    if len(df) < folds:
        raise ValueError(f"cannot split {len(df)} rows into {folds} folds")
    splitter = KFold(n_splits=folds, shuffle=True, random_state=parameters.seed)
    scores: list[FoldScore] = []
    confusion = np.zeros((len(schema.SPECIES), len(schema.SPECIES)), dtype=np.int64)
    for fold, (train_idx, test_idx) in enumerate(splitter.split(df), start=1):
        train, test = df.iloc[train_idx], df.iloc[test_idx]
        transformers = FittedTransformers.fit(train)
        x_train, y_train = transformers.transform_features(train), transformers.encode_target(train)
        x_test, y_test = transformers.transform_features(test), transformers.encode_target(test)
        model, _ = train_model(x_train, y_train, parameters)
        loss, accuracy = evaluate_model(model, x_test, y_test)
        np.add.at(confusion, (y_test, predict_indices(model, x_test)), 1)
        score = FoldScore(fold, len(train), len(test), accuracy, loss)
        scores.append(score)
        if on_fold_end is not None:
            on_fold_end(score)
    return CrossValidationScores(folds=scores, confusion_matrix=confusion.tolist())
