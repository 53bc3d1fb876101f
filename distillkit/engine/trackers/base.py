"""The interface of an experiment tracker, and the helpers the trackers share."""
from __future__ import annotations

import importlib.util
from typing import Dict, Iterable, Optional, Tuple

from ...errors import ConfigError, nearest_names


class Tracker:
    """One experiment tracker of a run, created on rank 0 only.

    A tracker is built as ``cls(options, key_path)`` from its entry of ``train.trackers`` and then sees, in order:
    ``start(config, run_dir, state)`` once before training (``config``: the config as plain data, as config.yaml
    holds it; ``state``: what its ``start`` returned when this run started before, for ``--resume``; it returns the
    state to keep), ``log_epoch(row, step)`` with each metrics.jsonl row (``step``: the epoch, numbered across
    stages), ``log_results(results)`` with the dict results.json holds, and ``close(failed)``.

    ``library``: the module it imports (checked when the run starts, on every rank), ``extra``: the pip extra that
    installs it; ``options``: the option names it reads; ``pass_through``: other options go to the library."""

    library: str = ""
    extra: str = ""
    options: Tuple[str, ...] = ()
    pass_through: bool = False

    def __init__(self, options: Dict[str, object], key_path: str):
        self.key_path = key_path
        self.settings = dict(options)

    @classmethod
    def check_options(cls, name: str, options: Dict[str, object], key_path: str) -> None:
        if cls.pass_through:
            return
        for key in options:
            if key not in cls.options:
                raise ConfigError(f"the {name} tracker has no option {key!r}; it reads "
                                  f"{', '.join(cls.options) or 'none'}.", key_path=f"{key_path}.{key}",
                                  candidates=nearest_names(key, cls.options))

    @classmethod
    def installed(cls) -> bool:
        return not cls.library or importlib.util.find_spec(cls.library) is not None

    def start(self, config: dict, run_dir: str, state: Optional[dict]) -> Optional[dict]:
        return None

    def log_epoch(self, row: Dict[str, object], step: int) -> None:
        raise NotImplementedError

    def log_results(self, results: Dict[str, object]) -> None:
        pass

    def close(self, failed: bool = False) -> None:
        pass


def scalars(row: Dict[str, object], skip: Iterable[str] = ("epoch",)) -> Dict[str, float]:
    """The numeric entries of a row (booleans and ``skip`` left out)."""
    return {k: float(v) for k, v in row.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}


def flatten(data, prefix: str = "", sep: str = "/") -> Dict[str, object]:
    """Nested mappings as one level: ``{'student': {'top1': 1}}`` -> ``{'student/top1': 1}`` (lists kept whole)."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}{sep}{key}" if prefix else str(key), sep))
    return flat
