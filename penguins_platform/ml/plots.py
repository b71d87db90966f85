"""Small PNG plots for the Dagster UI, where a picture beats a table of numbers.

Dagster has no image metadata type, so each plot is a base64 PNG inside Markdown.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _markdown_image(figure, title: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"![{title}](data:image/png;base64,{encoded})"


def confusion_matrix_markdown(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    title: str = "Cross-validation confusion matrix",
) -> str:
    """Rows are true species, columns predicted: by default over every held-out row of
    every fold."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(4, 3.5))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            colour = "white" if count > peak / 2 else "black"
            axes.text(j, i, str(count), ha="center", va="center", color=colour)
    figure.colorbar(image, ax=axes)
    axes.set_title(title)
    return _markdown_image(figure, "confusion matrix")


def training_curve_markdown(loss: Sequence[float], accuracy: Sequence[float]) -> str:
    """Loss and accuracy per epoch of the final fit: a flat or rising loss shows at a glance."""
    plt = _pyplot()
    figure, loss_axes = plt.subplots(figsize=(5, 3))
    epochs = range(1, len(loss) + 1)
    loss_axes.plot(epochs, loss, color="tab:red", label="loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss", color="tab:red")
    accuracy_axes = loss_axes.twinx()
    accuracy_axes.plot(epochs, accuracy, color="tab:blue", label="accuracy")
    accuracy_axes.set_ylabel("accuracy", color="tab:blue")
    accuracy_axes.set_ylim(0, 1)
    loss_axes.set_title("Training curve")
    return _markdown_image(figure, "training curve")
