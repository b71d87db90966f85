"""The species classifier: a small Keras 3 network on the JAX backend."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from penguins_platform import defaults
from penguins_platform.ml import schema

if TYPE_CHECKING:
    import keras
    from keras.layers import Dense

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainingParameters:
    """The knobs of one fit; left out, each is the default recipe's (`defaults.py`)."""

    epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    learning_rate: float = defaults.LEARNING_RATE
    seed: int = defaults.SEED
    # Full batches per compiled call: 1 is Keras's own `fit`, one dispatch a step; None runs
    # a whole epoch in one call (`compiled_fit`). The results are the same either way.
    steps_per_execution: int | None = defaults.STEPS_PER_EXECUTION


@dataclass
class TrainingHistory:
    """Per-epoch loss and accuracy of one fit, for logs, plots and MLflow metrics."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def import_keras() -> ModuleType:
    """Import Keras on the JAX backend, with JAX's persistent compilation cache switched on.

    The backend must be chosen before Keras is first imported. The compilation cache makes
    every fit after the first (in this process or a later one) skip XLA compilation.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    cache_dir = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    import jax

    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(
            f"Keras was already imported with the {keras.backend.backend()!r} backend; "
            "set KERAS_BACKEND=jax before anything imports keras"
        )
    return keras


def build_model(input_dim: int, learning_rate: float, seed: int = 0) -> keras.Model:
    """Dense(10, relu) → Dense(8, relu) → Dense(3, softmax), trained with plain SGD.

    Each layer's initial weights come from its own seed, derived from `seed`, rather than
    from Keras's global generator, which Python's shared `random` module seeds: two models
    built at once in two threads get the same weights they would get one after the other.
    """
    keras = import_keras()

    def dense(units: int, activation: str, layer: int) -> Dense:
        initializer = keras.initializers.GlorotUniform(seed=seed * 1000 + layer)
        return keras.layers.Dense(units, activation=activation, kernel_initializer=initializer)

    model = keras.Sequential(
        [
            keras.Input(shape=(input_dim,)),
            dense(10, "relu", 1),
            dense(8, "relu", 2),
            dense(len(schema.SPECIES), "softmax", 3),
        ],
        name="penguins",
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train_model(
    x: np.ndarray,
    y: np.ndarray,
    parameters: TrainingParameters,
    on_epoch_end: EpochCallback | None = None,
    stop: threading.Event | None = None,
) -> tuple[keras.Model, TrainingHistory]:
    """Fit a fresh, seeded model on (x, y). `on_epoch_end(epoch, logs)` reports progress,
    epochs counted from 1.

    With `steps_per_execution=1` this is Keras's `Model.fit`; otherwise `fit_compiled` runs
    the same steps many to a compiled call. Both give the same weights and history. A compiled
    fit stops between epochs once `stop` is set.
    """
    keras = import_keras()
    if len(x) == 0:
        raise ValueError("cannot train a model on 0 rows")
    model = build_model(x.shape[1], parameters.learning_rate, parameters.seed)
    history = TrainingHistory()

    def record(epoch: int, logs: dict[str, float]) -> None:
        history.loss.append(float(logs["loss"]))
        history.accuracy.append(float(logs["accuracy"]))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, {k: float(v) for k, v in logs.items()})

    if parameters.steps_per_execution == 1:
        # Keras shuffles each epoch with NumPy's global generator.
        np.random.seed(parameters.seed)
        model.fit(
            x,
            y,
            epochs=parameters.epochs,
            batch_size=parameters.batch_size,
            verbose=0,
            callbacks=[
                keras.callbacks.LambdaCallback(
                    on_epoch_end=lambda epoch, logs: record(epoch, logs or {})
                )
            ],
        )
    else:
        from penguins_platform.ml.compiled_fit import fit_compiled

        fit_compiled(
            model,
            x,
            y,
            epochs=parameters.epochs,
            batch_size=parameters.batch_size,
            seed=parameters.seed,
            steps_per_execution=parameters.steps_per_execution,
            on_epoch_end=record,
            stop=stop,
        )
    return model, history


def evaluate_model(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of `model` on (x, y)."""
    loss, accuracy = model.evaluate(x, y, verbose=0)
    return float(loss), float(accuracy)


def predict_indices(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, verbose=0)).argmax(axis=1)
