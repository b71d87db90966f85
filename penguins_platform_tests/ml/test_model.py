import numpy as np
import pytest

from penguins_platform.ml.model import (
    TrainingParameters,
    build_model,
    evaluate_model,
    import_keras,
    train_model,
)


def test_keras_runs_on_jax():
    assert import_keras().backend.backend() == "jax"


def test_architecture_matches_the_reference():
    model = build_model(input_dim=9, learning_rate=0.01)
    dense = [layer for layer in model.layers]
    assert [layer.units for layer in dense] == [10, 8, 3]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "softmax"]
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.loss == "sparse_categorical_crossentropy"


def _separable_data(rows: int = 90) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(rows) % 3
    x = rng.normal(size=(rows, 4)).astype("float32") * 0.1
    x[np.arange(rows), y] += 2.0
    return x, y


def test_training_learns_separable_classes_and_reports_every_epoch():
    x, y = _separable_data()
    epochs_seen = []
    model, history = train_model(
        x, y, TrainingParameters(epochs=30, learning_rate=0.1),
        on_epoch_end=lambda epoch, logs: epochs_seen.append((epoch, "loss" in logs)),
    )  # fmt: skip
    assert epochs_seen == [(e, True) for e in range(1, 31)]
    assert len(history.loss) == 30
    assert history.loss[-1] < history.loss[0]
    _, accuracy = evaluate_model(model, x, y)
    assert accuracy > 0.9


def test_same_seed_gives_the_same_model():
    x, y = _separable_data()
    parameters = TrainingParameters(epochs=3, seed=1)
    first, _ = train_model(x, y, parameters)
    second, _ = train_model(x, y, parameters)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_training_config_rejects_nonsense():
    from penguins_platform.defs.training import CrossValidationConfig, TrainingConfig

    with pytest.raises(ValueError, match="epochs"):
        TrainingConfig(epochs=0)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainingConfig(learning_rate=0)
    with pytest.raises(ValueError, match="folds"):
        CrossValidationConfig(folds=1)
