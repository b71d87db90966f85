"""Cross-validation: how well the training recipe generalises, measured without leakage."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


@dataclass(frozen=True)
class FoldSplit:
    """Which rows one fold trains on and which it holds out, by position in the data."""

    fold: int
    train_rows: np.ndarray
    test_rows: np.ndarray


@dataclass(frozen=True)
class FoldResult:
    """One fold's score and its held-out rows' confusion matrix (rows are the true species,
    columns the predicted)."""

    score: FoldScore
    confusion_matrix: np.ndarray


def fold_splits(df: pd.DataFrame, folds: int, seed: int) -> list[FoldSplit]:
    """Shuffled, seeded K-fold splits, each small enough to ship to another process."""
    from sklearn.model_selection import KFold

    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    if len(df) < folds:
        raise ValueError(f"cannot split {len(df)} rows into {folds} folds")
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        FoldSplit(fold, train_rows, test_rows)
        for fold, (train_rows, test_rows) in enumerate(splitter.split(df), start=1)
    ]


def score_fold(df: pd.DataFrame, split: FoldSplit, parameters: TrainingParameters) -> FoldResult:
    """Fit transformers and a fresh seeded model on the fold's training rows only, so no
    statistic of a held-out row leaks into its score, then score the held-out rows.

    It depends on nothing but its arguments, so a fold gives the same result in any process.
    """
    train, test = df.iloc[split.train_rows], df.iloc[split.test_rows]
    transformers = FittedTransformers.fit(train)
    x_train, y_train = transformers.transform_features(train), transformers.encode_target(train)
    x_test, y_test = transformers.transform_features(test), transformers.encode_target(test)
    model, _ = train_model(x_train, y_train, parameters)
    loss, accuracy = evaluate_model(model, x_test, y_test)
    confusion = np.zeros((len(schema.SPECIES), len(schema.SPECIES)), dtype=np.int64)
    np.add.at(confusion, (y_test, predict_indices(model, x_test)), 1)
    score = FoldScore(split.fold, len(train), len(test), accuracy, loss)
    return FoldResult(score, confusion)


def combine_folds(results: Iterable[FoldResult]) -> CrossValidationScores:
    """The folds' scores in fold order and their summed confusion matrix, whatever order
    the folds finished in."""
    ordered = sorted(results, key=lambda result: result.score.fold)
    if not ordered:
        raise ValueError("no fold results to combine")
    confusion = np.sum([result.confusion_matrix for result in ordered], axis=0)
    return CrossValidationScores(
        folds=[result.score for result in ordered], confusion_matrix=confusion.tolist()
    )


def cross_validate(
    df: pd.DataFrame,
    folds: int,
    parameters: TrainingParameters,
    on_fold_end: FoldCallback | None = None,
) -> CrossValidationScores:
    """Every fold in this process, one after another: the plain-Python path. The Dagster
    asset runs the same `fold_splits`, `score_fold` and `combine_folds` as separate steps."""
    results = []
    for split in fold_splits(df, folds, parameters.seed):
        result = score_fold(df, split, parameters)
        results.append(result)
        if on_fold_end is not None:
            on_fold_end(result.score)
    return combine_folds(results)
