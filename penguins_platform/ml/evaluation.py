"""Cross-validation: how well the training recipe generalises, measured without leakage."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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


def score_fold(
    df: pd.DataFrame,
    split: FoldSplit,
    parameters: TrainingParameters,
    stop: threading.Event | None = None,
) -> FoldResult:
    """Fit transformers and a fresh seeded model on the fold's training rows only, so no
    statistic of a held-out row leaks into its score, then score the held-out rows.

    It depends on nothing but its arguments, so a fold gives the same result in any process.
    """
    train, test = df.iloc[split.train_rows], df.iloc[split.test_rows]
    transformers = FittedTransformers.fit(train)
    x_train, y_train = transformers.transform_features(train), transformers.encode_target(train)
    x_test, y_test = transformers.transform_features(test), transformers.encode_target(test)
    model, _ = train_model(x_train, y_train, parameters, stop=stop)
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


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fold_workers(requested: int, folds: int, parameters: TrainingParameters) -> int:
    """How many folds to train at once: `requested`, or one per usable core when it is 0,
    never more than the folds. Keras's per-step `fit` (steps_per_execution=1) shuffles with
    NumPy's global generator, which threads would share, so it always trains one at a time.
    """
    if parameters.steps_per_execution == 1:
        return 1
    return max(1, min(requested or usable_cores(), folds))


class BackgroundFolds:
    """Folds training in background threads while the caller goes on.

    A compiled fit spends most of its time inside XLA calls, which release the GIL, so on a
    machine with two cores two folds train in about the time of one and a half. Every fold
    depends only on its data, split and parameters, so its result is the one it would give
    in sequence (a test holds them equal).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[tuple[int, TrainingParameters], Future[FoldResult]] = {}
        self._stop = threading.Event()

    def start(
        self, df: pd.DataFrame, splits: Sequence[FoldSplit], parameters: TrainingParameters
    ) -> None:
        """Start every fold, `workers` at a time."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="fold")
            self._stop = threading.Event()
        for split in splits:
            key = (split.fold, parameters)
            self._futures[key] = self._pool.submit(score_fold, df, split, parameters, self._stop)

    def take(self, split: FoldSplit, parameters: TrainingParameters) -> FoldResult | None:
        """The fold's result, waiting for it if it is still training; None if never started."""
        future = self._futures.pop((split.fold, parameters), None)
        return None if future is None else future.result()

    def close(self) -> None:
        """Drop folds nobody took, and stop the ones training at their next epoch: when a run
        is canceled, its process waits for these threads before it can exit."""
        self._futures.clear()
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def cross_validate(
    df: pd.DataFrame,
    folds: int,
    parameters: TrainingParameters,
    on_fold_end: FoldCallback | None = None,
    workers: int = 1,
) -> CrossValidationScores:
    """Every fold in this process, `workers` at a time (0: one per core): the plain-Python
    path. The Dagster asset runs the same `fold_splits`, `score_fold` and `combine_folds` as
    separate steps."""
    splits = fold_splits(df, folds, parameters.seed)
    background = BackgroundFolds(fold_workers(workers, folds, parameters))
    if background.workers > 1:
        background.start(df, splits, parameters)
    results = []
    try:
        for split in splits:
            result = background.take(split, parameters) or score_fold(df, split, parameters)
            results.append(result)
            if on_fold_end is not None:
                on_fold_end(result.score)
    finally:
        background.close()
    return combine_folds(results)
