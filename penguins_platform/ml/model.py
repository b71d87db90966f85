"""The species classifier: a small Keras 3 network on the JAX backend."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from penguins_platform.ml import schema

if TYPE_CHECKING:
    import keras

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainingParameters:
    """The knobs of one fit. Their defaults live in `penguins_platform.defaults`."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int


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


def build_model(input_dim: int, learning_rate: float) -> keras.Model:
    """Dense(10, relu) → Dense(8, relu) → Dense(3, softmax), trained with plain SGD."""
    keras = import_keras()
    model = keras.Sequential(
        [
            keras.Input(shape=(input_dim,)),
            keras.layers.Dense(10, activation="relu"),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(len(schema.SPECIES), activation="softmax"),
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
) -> tuple[keras.Model, TrainingHistory]:
    """Fit a fresh, seeded model on (x, y). `on_epoch_end(epoch, logs)` reports progress."""
    keras = import_keras()
    keras.utils.set_random_seed(parameters.seed)
    model = build_model(x.shape[1], parameters.learning_rate)
    callbacks = []
    if on_epoch_end is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch_end(
                    epoch + 1, {k: float(v) for k, v in (logs or {}).items()}
                )
            )
        )
    fitted = model.fit(
        x,
        y,
        epochs=parameters.epochs,
        batch_size=parameters.batch_size,
        verbose=0,
        callbacks=callbacks,
    )
    history = TrainingHistory(
        loss=[float(v) for v in fitted.history["loss"]],
        accuracy=[float(v) for v in fitted.history["accuracy"]],
    )
    return model, history


def evaluate_model(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of `model` on (x, y)."""
    loss, accuracy = model.evaluate(x, y, verbose=0)
    return float(loss), float(accuracy)


def predict_indices(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, verbose=0)).argmax(axis=1)
