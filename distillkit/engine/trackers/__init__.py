"""Experiment trackers: where a run's per-epoch rows, config and results go besides metrics.jsonl.

``train.trackers`` lists them, each a name or ``{name: NAME, <option>: value, ...}``::

    trackers: [tensorboard, {name: wandb, project: kd, mode: offline}, {name: mlflow, tracking_uri: ...}]

Not given: TensorBoard when it is installed (else none).  ``[]``: none (metrics.jsonl alone).
A tracker is a :class:`~distillkit.engine.trackers.base.Tracker`; ``register_tracker`` adds one.
Only rank 0 creates trackers; the names and libraries are checked on every rank before anything is built.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from ...errors import ConfigError
from ...registry import Registry
from .base import Tracker
from .mlflow_tracker import MlflowTracker
from .tensorboard_tracker import TensorBoardTracker
from .wandb_tracker import WandbTracker

logger = logging.getLogger(__name__)

TRACKERS = Registry("experiment tracker")
register_tracker = TRACKERS.register
register_tracker(TensorBoardTracker, "tensorboard")
register_tracker(WandbTracker, "wandb")
register_tracker(MlflowTracker, "mlflow")

STATE_FILE = "trackers.json"  # in the run directory: each tracker's run id, so --resume continues the same run

Entry = Tuple[str, dict, str]  # (name, options, key path)


def parse_entries(value: Optional[Sequence], key_path: str) -> Optional[List[Entry]]:
    """``train.trackers`` as ``[(name, options, key path)]`` (None when not given); names are checked."""
    if value is None:
        return None
    entries = []
    for index, item in enumerate(value):
        path = f"{key_path}.{index}"
        options = {}
        if isinstance(item, dict):
            options = {k: v for k, v in item.items() if k != "name"}
            item = item.get("name")
        if not isinstance(item, str):
            raise ConfigError(f"expected a tracker name or {{name: NAME, <option>: value}}, found {item!r}.",
                              key_path=path, hint=f"Trackers: {', '.join(TRACKERS.names())}.")
        cls = TRACKERS.resolve(item, path)
        cls.check_options(item, options, path)
        if item in [e[0] for e in entries]:
            raise ConfigError(f"the {item} tracker is listed twice; list each tracker once.", key_path=path)
        entries.append((item, options, path))
    return entries


def run_entries(stages: Sequence) -> Optional[List[Entry]]:
    """The trackers of a run: one list for all its stages (a stage may not name other ones)."""
    first = parse_entries(stages[0].trackers, "train.trackers")
    for stage in stages[1:]:
        if stage.trackers != stages[0].trackers:
            raise ConfigError("the trackers are the whole run's, but this stage lists other ones than "
                              f"{stages[0].key_path}.trackers; write train.trackers once, beside the stages.",
                              key_path=f"{stage.key_path}.trackers")
    return first


def missing_library(name: str, key_path: str) -> ConfigError:
    cls = TRACKERS[name]
    return ConfigError(f"the {name} tracker needs the {cls.library} library, which is not installed: pip install "
                       f"'distillkit[{cls.extra}]' (or pip install {cls.library}), or remove {name} from "
                       f"train.trackers.", key_path=key_path)


def check_installed(entries: Optional[List[Entry]]) -> List[Entry]:
    """The trackers to start (``None``: the default, TensorBoard when installed); a missing library is an error."""
    if entries is None:
        return [("tensorboard", {}, "train.trackers")] if TensorBoardTracker.installed() else []
    for name, _, path in entries:
        if not TRACKERS[name].installed():
            raise missing_library(name, path)
    return entries


class Trackers:
    """The trackers of one run, fed together: ``log_epoch`` with each row, ``log_results``, ``close``."""

    def __init__(self, trackers: Sequence[Tracker] = ()):
        self.trackers = list(trackers)

    @classmethod
    def open(cls, entries: Optional[List[Entry]], config: dict, run_dir: str, is_main: bool,
             resuming: bool = False) -> "Trackers":
        """Check the libraries (every rank) and start the trackers (rank 0; none elsewhere)."""
        entries = check_installed(entries)
        if not is_main:
            return cls()
        state_path = os.path.join(run_dir, STATE_FILE)
        saved = {}
        if resuming and os.path.isfile(state_path):
            with open(state_path, encoding="utf-8") as handle:
                saved = json.load(handle)
        group, states = cls(), {}
        try:
            for name, options, path in entries:
                tracker = TRACKERS[name](options, path)
                try:
                    state = tracker.start(config, run_dir, saved.get(name))
                except Exception as exc:
                    raise ConfigError(f"the {name} tracker did not start: {type(exc).__name__}: {exc}. Check its "
                                      f"options (or remove it from train.trackers).", key_path=path) from exc
                group.trackers.append(tracker)
                if state:
                    states[name] = state
        except BaseException:
            group.close(failed=True)
            raise
        if states:
            with open(state_path, "w", encoding="utf-8") as handle:
                json.dump(states, handle, indent=2)
        return group

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def _each(self, method: str, *args) -> None:
        for tracker in self.trackers:
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # a tracker's failure (a lost server) must not stop training
                logger.warning("the %s tracker failed in %s: %s: %s", tracker.key_path, method, type(exc).__name__,
                               exc)

    def log_epoch(self, row: Dict[str, object], step: int) -> None:
        self._each("log_epoch", row, step)

    def log_results(self, results: Dict[str, object]) -> None:
        self._each("log_results", results)

    def close(self, failed: bool = False) -> None:
        self._each("close", failed)
        self.trackers = []
