"""The best-metric tracker: which epoch's weights are the best so far, by a named metric."""
from __future__ import annotations

import math
from typing import Callable, Optional


def default_mode(name: str) -> str:
    """``max`` for accuracies and overlaps (``val_top1``, ``*acc*``, ``*map*``, ``*iou*``), ``min`` for anything
    else (losses)."""
    return "max" if any(word in name for word in ("top", "acc", "map", "iou")) else "min"


class BestMetric:
    """Tracks the best value of metric ``name`` (``mode`` max or min) and, optionally, a copy of the best weights."""

    def __init__(self, name: str, mode: Optional[str] = None):
        self.name = name
        self.mode = mode or default_mode(name)
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {self.mode!r}")
        self.value = -math.inf if self.mode == "max" else math.inf
        self.best_state: Optional[dict] = None

    def is_better(self, value: float) -> bool:
        return value > self.value if self.mode == "max" else value < self.value

    def update(self, value: float, snapshot: Optional[Callable[[], dict]] = None) -> bool:
        """Record ``value``; True (and a fresh ``snapshot()`` kept) when it is the best so far."""
        if not self.is_better(value):
            return False
        self.value = float(value)
        if snapshot is not None:
            self.best_state = snapshot()
        return True

    def state_dict(self) -> dict:
        return {"name": self.name, "mode": self.mode, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        """Take the stored value when it was measured by the same metric (name and mode)."""
        if state.get("name") == self.name and state.get("mode") == self.mode:
            self.value = float(state["value"])

    def describe(self) -> str:
        return f"{self.name} {self.value:.4g} ({self.mode})"
