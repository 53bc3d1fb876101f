"""TensorBoard: epoch scalars (and the final results as text) in ``RUN_DIR/tensorboard``."""
from __future__ import annotations

import json
import os

from .base import Tracker, flatten, scalars


class TensorBoardTracker(Tracker):
    """Options: ``log_dir`` (default ``RUN_DIR/tensorboard``)."""

    library = "tensorboard"
    extra = "tensorboard"
    options = ("log_dir",)

    def start(self, config, run_dir, state):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.settings.get("log_dir") or os.path.join(run_dir, "tensorboard"))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", 0)
        return None

    def log_epoch(self, row, step):
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_results(self, results):
        for key, value in scalars(flatten(results)).items():
            self.writer.add_scalar(f"results/{key}", value, 0)
        self.writer.flush()

    def close(self, failed=False):
        self.writer.close()
