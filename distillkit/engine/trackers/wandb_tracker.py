"""Weights & Biases through its own library: the config, one history step per epoch, the results as summary."""
from __future__ import annotations

import os

from .base import Tracker, flatten, scalars


class WandbTracker(Tracker):
    """Options: ``project`` (default ``distillkit``), ``run_name`` (default: the run directory's name), ``dir``
    (default: the run directory, so its files sit in ``RUN_DIR/wandb``), ``mode`` (``online`` | ``offline`` |
    ``disabled``; default: wandb's own, ``WANDB_MODE``); any other option (``entity``, ``group``, ``tags``,
    ``notes``, ...) is passed to ``wandb.init``.  A resumed run continues the same wandb run (its id is kept)."""

    library = "wandb"
    extra = "wandb"
    pass_through = True

    def start(self, config, run_dir, state):
        import wandb

        options = dict(self.settings)
        kwargs = {"project": options.pop("project", "distillkit"),
                  "name": options.pop("run_name", os.path.basename(os.path.abspath(run_dir))),
                  "dir": options.pop("dir", run_dir), "config": config, **options}
        if state and state.get("id"):
            kwargs.update(id=state["id"], resume="allow")
        os.makedirs(kwargs["dir"], exist_ok=True)
        self.run = wandb.init(**kwargs)
        return {"id": self.run.id}

    def log_epoch(self, row, step):
        self.run.log(scalars(row), step=step)

    def log_results(self, results):
        self.run.summary.update({f"results/{k}": v for k, v in scalars(flatten(results)).items()})

    def close(self, failed=False):
        self.run.finish(exit_code=1 if failed else 0)
