"""``distillkit plot RUN_DIR [RUN_DIR ...] [--out DIR]``: curves of several runs side by side, from metrics.jsonl.

One figure per quantity, one line per run (labelled by its directory's name): the total ``loss``, each term's
``loss/<term>``, and each validation metric (every ``val_*`` column a run has: ``val_top1``, ``val_top5_ema``,
...).  The x axis is the epoch (numbered across the stages of a multi-stage run; a dotted line marks where a
stage begins).  PNG files ``loss.png``, ``loss_<term>.png``, ``val_top1.png``, ... are written to ``--out``
(default: the run directory when there is one run, else ``plots``).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence

from ..errors import DistillkitError

DEFAULT_OUT = "plots"  # several runs, no --out


def read_rows(run_dir: str) -> List[dict]:
    """The rows of ``run_dir/metrics.jsonl``, one per epoch (a repeated epoch: its last row)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise DistillkitError(f"{run_dir!r} holds no metrics.jsonl; give the run directory of a training run "
                              f"(it is written after the first epoch).")
    by_epoch = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DistillkitError(f"{path}, line {number}: not a JSON object ({exc}).") from exc
            by_epoch[row["epoch"]] = row
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def quantities(runs: Dict[str, List[dict]]) -> List[str]:
    """The plotted columns of all runs: ``loss``, ``loss/<term>`` and ``val_*``, in that order."""
    names = {k for rows in runs.values() for row in rows for k, v in row.items()
             if (k == "loss" or k.startswith(("loss/", "val_"))) and isinstance(v, (int, float))}
    return sorted(names, key=lambda k: (not k.startswith("loss"), k != "loss", k))


def run_labels(run_dirs: Sequence[str]) -> List[str]:
    """Each run's directory name, or its path where two runs share a name."""
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    return [os.path.normpath(d) if names.count(name) > 1 else name for d, name in zip(run_dirs, names)]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DistillkitError("distillkit plot needs matplotlib, which is not installed: pip install "
                              "'distillkit[plot]' (or pip install matplotlib).") from exc
    return plt


def make_figures(run_dirs: Sequence[str]) -> Dict[str, object]:
    """``{quantity: matplotlib Figure}``, one line per run (its ``label`` the run's name), not saved."""
    plt = _pyplot()
    runs = dict(zip(run_labels(run_dirs), (read_rows(d) for d in run_dirs)))
    figures = {}
    for key in quantities(runs):
        figure, axes = plt.subplots(figsize=(7, 4))
        for label, rows in runs.items():
            points = [(row["epoch"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
            if points:
                line, = axes.plot(*zip(*points), marker="o", markersize=3, label=label)
                for row, previous in zip(rows[1:], rows):
                    if row.get("stage", 1) != previous.get("stage", 1):
                        axes.axvline(row["epoch"] - 0.5, color=line.get_color(), linestyle=":", linewidth=1)
        axes.set_title(key)
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figures[key] = figure
    return figures


def file_name(key: str) -> str:
    return key.replace("/", "_") + ".png"


def plot_runs(run_dirs: Sequence[str], out: str = None) -> List[str]:
    """Write the figures of ``run_dirs`` as PNG files under ``out``; returns their paths."""
    if not run_dirs:
        raise DistillkitError("distillkit plot needs at least one run directory.")
    out = out or (run_dirs[0] if len(run_dirs) == 1 else DEFAULT_OUT)
    figures = make_figures(run_dirs)
    if not figures:
        raise DistillkitError(f"the metrics.jsonl of {', '.join(run_dirs)} hold no loss or val_* columns to plot.")
    os.makedirs(out, exist_ok=True)
    plt = _pyplot()
    written = []
    for key, figure in figures.items():
        path = os.path.join(out, file_name(key))
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
