"""Keras training with many SGD steps per compiled call, bit for bit what `Model.fit` computes.

`Model.fit` on JAX dispatches one jitted `train_step` per batch from Python and runs the
callbacks around it. The network here is tiny, so on more than a few thousand rows nearly
all of a fit is that dispatch (about 0.2 ms a step on a small machine), not arithmetic.
`fit_compiled` runs the same `train_step` (the model's own, so the loss, the optimizer and
the metrics are Keras's) inside `jax.lax.scan`, so one compiled call does up to
`steps_per_execution` steps, a whole epoch by default.

It draws the same shuffles as `Model.fit` seeded with `numpy.random.seed(seed)`, from a
`RandomState` of its own, so its results equal `fit`'s (a test holds them to that), and two
fits in two threads cannot disturb each other's shuffles. One `fit` call per epoch is gone,
and with it Keras's batch-level callbacks; the epoch-level logs stay as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

EpochLogs = dict[str, float]


class FitStopped(RuntimeError):
    """The fit was asked to stop (its run was canceled) and did, between two epochs."""


def fit_compiled(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    steps_per_execution: int | None,
    on_epoch_end: Callable[[int, EpochLogs], None],
    stop: threading.Event | None = None,
) -> None:
    """Train the compiled `model` on (x, y) in place; `on_epoch_end(epoch, logs)` after each
    epoch, counted from 0 as Keras counts them.

    `steps_per_execution` is how many full batches one compiled call runs; None, or any
    number above the batches in an epoch, runs each epoch's full batches in one call. The
    last, partial batch of an epoch always runs on its own, as in `fit`. Once `stop` is
    set, the fit raises `FitStopped` before its next epoch: a canceled run does not wait for
    a fold training in a background thread to finish.
    """
    import jax

    rows = len(x)
    full_batches, partial = divmod(rows, batch_size)
    cut = full_batches * batch_size
    chunk = min(steps_per_execution or full_batches, full_batches) or 1

    # `fit` builds the model, its loss, metrics and optimizer before its first epoch; a fit
    # of zero epochs is the public way to do the same. It draws one shuffle to find a batch
    # shape, so this generator draws (and drops) one too, to stay in step with `fit`.
    model.fit(x[:batch_size], y[:batch_size], epochs=0, verbose=0)
    shuffles = np.random.RandomState(seed)
    shuffles.permutation(rows)

    def steps(state, x_batches, y_batches):
        def step(state, batch):
            _, state = model.train_step(state, batch)
            return state, None

        state, _ = jax.lax.scan(step, state, (x_batches, y_batches))
        return state

    run_steps = jax.jit(steps, donate_argnums=0)
    run_one = jax.jit(lambda state, xs, ys: model.train_step(state, (xs, ys))[1], donate_argnums=0)
    variables = (
        model.trainable_variables,
        model.non_trainable_variables,
        model.optimizer.variables,
        model.metrics_variables,
    )
    for epoch in range(epochs):
        if stop is not None and stop.is_set():
            raise FitStopped(f"stopped before epoch {epoch + 1} of {epochs}")
        model.reset_metrics()
        state = tuple([v.value for v in group] for group in variables)
        order = shuffles.permutation(rows)
        xs, ys = x[order], y[order]
        x_batches = xs[:cut].reshape(full_batches, batch_size, *x.shape[1:])
        y_batches = ys[:cut].reshape(full_batches, batch_size, *y.shape[1:])
        for start in range(0, full_batches, chunk):
            state = run_steps(
                state, x_batches[start : start + chunk], y_batches[start : start + chunk]
            )
        if partial:
            state = run_one(state, xs[cut:], ys[cut:])
        for group, values in zip(variables, state, strict=True):
            for variable, value in zip(group, values, strict=True):
                variable.assign(value)
        logs = {name: float(value) for name, value in model.get_metrics_result().items()}
        on_epoch_end(epoch, logs)
