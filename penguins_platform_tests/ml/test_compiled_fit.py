"""Many SGD steps per compiled call give what Keras's per-step `fit` gives, bit for bit."""

import threading

import numpy as np
import pytest

from penguins_platform import defaults
from penguins_platform.ml.evaluation import cross_validate
from penguins_platform.ml.model import TrainingParameters, predict_indices, train_model
from penguins_platform_tests.conftest import DATA_FILE

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def penguins():
    from penguins_platform.ml.cleaning import clean_penguins, read_penguins_csv

    raw = read_penguins_csv(DATA_FILE.read_bytes(), str(DATA_FILE))
    return clean_penguins(raw, seed=defaults.SEED)


@pytest.fixture(scope="module")
def features(penguins):
    from penguins_platform.ml.features import FittedTransformers

    transformers = FittedTransformers.fit(penguins)
    return transformers.transform_features(penguins), transformers.encode_target(penguins)


def _weights(model) -> np.ndarray:
    return np.concatenate([np.ravel(w) for w in model.get_weights()])


def _fit(features, **overrides):
    x, y = features
    epochs = []
    model, history = train_model(
        x, y, TrainingParameters(epochs=12, **overrides),
        on_epoch_end=lambda epoch, logs: epochs.append((epoch, logs["loss"], logs["accuracy"])),
    )  # fmt: skip
    return model, history, epochs


@pytest.fixture(scope="module")
def per_step(features):
    """Keras's own `fit`, one dispatch a step: the reference."""
    return _fit(features, steps_per_execution=1)


# 344 rows in batches of 32: 10 full batches and one of 24. 3 does not divide 10; 1,000 is
# more than an epoch holds.
@pytest.mark.parametrize("steps", [None, 3, 10, 1000])
def test_compiled_steps_train_the_same_weights_and_history_as_per_step_fit(
    features, per_step, steps
):
    reference, reference_history, reference_epochs = per_step
    model, history, epochs = _fit(features, steps_per_execution=steps)
    assert np.abs(_weights(model) - _weights(reference)).max() <= TOLERANCE
    assert np.abs(np.subtract(history.loss, reference_history.loss)).max() <= TOLERANCE
    assert np.abs(np.subtract(history.accuracy, reference_history.accuracy)).max() <= TOLERANCE
    # Epoch progress is reported as before: every epoch, counted from 1, with its logs.
    assert [e for e, *_ in epochs] == list(range(1, 13))
    assert np.abs(np.subtract(epochs, reference_epochs)).max() <= TOLERANCE
    assert history.loss[-1] < history.loss[0]


@pytest.mark.parametrize("batch_size", [8, 500], ids=["no partial batch", "batch over all rows"])
def test_batches_that_divide_the_rows_or_exceed_them_match_per_step_fit(features, batch_size):
    reference, reference_history, _ = _fit(features, steps_per_execution=1, batch_size=batch_size)
    model, history, _ = _fit(features, batch_size=batch_size)
    assert np.abs(_weights(model) - _weights(reference)).max() <= TOLERANCE
    assert np.abs(np.subtract(history.loss, reference_history.loss)).max() <= TOLERANCE


def test_cross_validation_scores_match_per_step_dispatch(penguins):
    """The default recipe, five folds, both ways: every fold's score and the pooled
    confusion matrix agree."""
    compiled = cross_validate(penguins, defaults.FOLDS, TrainingParameters())
    per_step = cross_validate(penguins, defaults.FOLDS, TrainingParameters(steps_per_execution=1))
    for ours, theirs in zip(compiled.folds, per_step.folds, strict=True):
        assert ours.accuracy == pytest.approx(theirs.accuracy, abs=TOLERANCE)
        assert ours.loss == pytest.approx(theirs.loss, abs=TOLERANCE)
    assert compiled.confusion_matrix == per_step.confusion_matrix
    assert compiled.accuracy_mean > 0.9


def test_fits_in_two_threads_equal_fits_one_after_another(features):
    """Weights come from per-layer seeds and shuffles from a generator of each fit's own, so
    concurrent fits cannot disturb each other."""
    x, y = features
    seeds = [1, 2, 3, 4]
    alone = [_weights(train_model(x, y, TrainingParameters(epochs=8, seed=s))[0]) for s in seeds]
    together: dict[int, np.ndarray] = {}

    def fit(seed: int) -> None:
        together[seed] = _weights(train_model(x, y, TrainingParameters(epochs=8, seed=seed))[0])

    threads = [threading.Thread(target=fit, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed, weights in zip(seeds, alone, strict=True):
        assert np.array_equal(together[seed], weights), f"seed {seed} differs in a thread"
    assert not np.array_equal(alone[0], alone[1]), "different seeds must give different weights"


def test_same_seed_predicts_the_same_either_way(features, per_step):
    x, _ = features
    reference, *_ = per_step
    model, *_ = _fit(features)
    ours = np.asarray(model.predict(x, verbose=0))
    theirs = np.asarray(reference.predict(x, verbose=0))
    assert np.abs(ours - theirs).max() <= TOLERANCE
    assert (predict_indices(model, x) == predict_indices(reference, x)).all()


def test_no_rows_is_refused_clearly():
    with pytest.raises(ValueError, match="0 rows"):
        train_model(np.zeros((0, 9), "float32"), np.zeros(0, "int64"), TrainingParameters())


def test_fold_workers_follow_the_cores_this_process_may_use():
    import os

    from penguins_platform.ml.evaluation import fold_workers, usable_cores

    compiled, per_step = TrainingParameters(), TrainingParameters(steps_per_execution=1)
    assert fold_workers(3, folds=5, parameters=compiled) == 3
    assert fold_workers(8, folds=5, parameters=compiled) == 5
    assert fold_workers(2, folds=5, parameters=per_step) == 1
    cores = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(cores)})
        assert usable_cores() == 1
        assert fold_workers(0, folds=5, parameters=compiled) == 1, "one core: no threads"
    finally:
        os.sched_setaffinity(0, cores)
    assert fold_workers(0, folds=5, parameters=compiled) == min(len(cores), 5)


def test_cross_validation_in_threads_scores_as_one_after_another(penguins):
    parameters = TrainingParameters(epochs=6)
    alone = cross_validate(penguins, 4, parameters, workers=1)
    finished: list[int] = []
    threaded = cross_validate(
        penguins, 4, parameters, workers=2, on_fold_end=lambda s: finished.append(s.fold)
    )
    assert threaded.folds == alone.folds
    assert threaded.confusion_matrix == alone.confusion_matrix
    assert finished == [1, 2, 3, 4], "progress is reported in fold order"


def test_closing_background_folds_stops_them_between_epochs(penguins):
    """A canceled run's process waits for its fold threads before it exits, so they stop at
    their next epoch instead of training on: 20,000 epochs would take minutes here."""
    import time

    from penguins_platform.ml.compiled_fit import FitStopped
    from penguins_platform.ml.evaluation import BackgroundFolds, fold_splits

    parameters = TrainingParameters(epochs=20_000)
    splits = fold_splits(penguins, 4, parameters.seed)
    background = BackgroundFolds(workers=2)
    background.start(penguins, splits, parameters)
    futures = list(background._futures.values())
    time.sleep(3)  # the first two folds are training
    started = time.monotonic()
    background.close()
    assert time.monotonic() - started < 30
    running, queued = futures[:2], futures[2:]
    for future in running:
        with pytest.raises(FitStopped, match="stopped before epoch"):
            future.result()
    assert all(future.cancelled() for future in queued)
