"""``distillkit plot RUN_DIR``: PNG curves of each loss term and of the accuracies from metrics.jsonl."""
from __future__ import annotations

import json
import os

from ..errors import DistillkitError


def plot_run(run_dir: str) -> list:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise DistillkitError(f"{run_dir!r} holds no metrics.jsonl; give the run directory of a training run.")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DistillkitError("distillkit plot needs matplotlib: pip install 'distillkit[plot]'.") from exc
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    epochs = [row["epoch"] for row in rows]
    written = []
    for filename, keys, ylabel in (("losses.png", sorted({k for r in rows for k in r if k.startswith("loss")}), "loss"),
                                   ("accuracy.png", sorted({k for r in rows for k in r if k.startswith("val_top")}),
                                    "accuracy (%)")):
        if not keys:
            continue
        figure, axes = plt.subplots(figsize=(7, 4))
        for key in keys:
            axes.plot(epochs, [r.get(key, float("nan")) for r in rows], marker="o", label=key)
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        out = os.path.join(run_dir, filename)
        figure.savefig(out, dpi=100)
        plt.close(figure)
        written.append(out)
    return written
