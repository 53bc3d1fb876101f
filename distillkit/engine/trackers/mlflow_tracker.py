"""MLflow through its own library: the config as params (and config.json), one step per epoch, the results."""
from __future__ import annotations

import json
import os
import re
import time

from .base import Tracker, flatten, scalars

MAX_PARAM_VALUE = 500  # characters of a config value kept as a param (the whole config is an artifact too)
PARAMS_PER_BATCH = 100  # MLflow's limit of params in one log_batch call


def metric_name(key: str) -> str:
    """MLflow's file store keeps a metric per file, so ``loss`` and ``loss/org`` cannot both be files:
    ``loss/org`` is logged as ``loss.org`` (in every store, so names do not depend on the store)."""
    return key.replace("/", ".")


def param_name(key: str) -> str:
    """A config key path as an MLflow param name (letters, digits, ``_-. /``; a tag such as ``!join`` -> ``_join``)."""
    return re.sub(r"[^\w\-. /]", "_", key)[:250]


class MlflowTracker(Tracker):
    """Options: ``tracking_uri`` (default: ``MLFLOW_TRACKING_URI``, else MLflow's own default), ``experiment``
    (default ``distillkit``), ``run_name`` (default: the run directory's name), ``tags`` (a mapping).
    A resumed run continues the same MLflow run (its id is kept)."""

    library = "mlflow"
    extra = "mlflow"
    options = ("tracking_uri", "experiment", "run_name", "tags")

    def start(self, config, run_dir, state):
        from mlflow.tracking import MlflowClient

        uri = self.settings.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = state.get("run_id") if state else None
        if self.run_id is None:
            name = str(self.settings.get("experiment") or "distillkit")
            found = self.client.get_experiment_by_name(name)
            experiment_id = found.experiment_id if found else self.client.create_experiment(name)
            tags = {str(k): str(v) for k, v in dict(self.settings.get("tags") or {}).items()}
            run = self.client.create_run(experiment_id, run_name=self.settings.get("run_name") or os.path.basename(
                os.path.abspath(run_dir)), tags={"distillkit.run_dir": os.path.abspath(run_dir), **tags})
            self.run_id = run.info.run_id
            self._log_config(config)
        return {"run_id": self.run_id, "tracking_uri": self.client.tracking_uri}

    def _log_config(self, config):
        from mlflow.entities import Param

        values = {param_name(key): value if isinstance(value, str) else json.dumps(value, default=str)
                  for key, value in flatten(config, sep=".").items()}
        params = [Param(key, value[:MAX_PARAM_VALUE]) for key, value in values.items()]
        for start in range(0, len(params), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + PARAMS_PER_BATCH])
        self.client.log_dict(self.run_id, config, "config.json")

    def _log_metrics(self, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(metric_name(k), v, now, step) for k, v in values.items()])

    def log_epoch(self, row, step):
        self._log_metrics(scalars(row), step)

    def log_results(self, results):
        self._log_metrics({f"results/{k}": v for k, v in scalars(flatten(results)).items()}, 0)
        self.client.log_dict(self.run_id, results, "results.json")

    def close(self, failed=False):
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
