"""``distillkit.train(config, **overrides)``: ``distillkit train`` from Python."""
from __future__ import annotations

import inspect
from typing import Dict, Iterable, List, Tuple

from ..config.schema import is_known_key
from ..errors import ConfigError, nearest_names
from ..runner import train_from_config

#: the keyword options of a run (``device``, ``seed``, ``run_dir``, ``resume``, ``strict``, ``callbacks``, ...)
RUN_OPTIONS = tuple(name for name in inspect.signature(train_from_config).parameters
                    if name not in ("config_path", "overrides"))


def train(config, overrides: Iterable[str] = (), **options) -> Dict[str, object]:
    """Train (and test) from ``config``: a YAML file path, a dict in the same form (either torchdistill
    generation), or what :func:`distillkit.load_config` returned. Returns the results dict that
    ``distillkit train`` writes to ``<run_dir>/results.json``.

    Keywords are the options of :func:`distillkit.train_from_config` (``device``, ``seed``, ``run_dir``,
    ``resume``, ``strict``, ``callbacks``, ...) or config overrides, the value set as given (no YAML parsing)::

        distillkit.train("kd.yaml", device="cpu", run_dir="runs/kd", train__num_epochs=1)  # '__' for '.'
        distillkit.train(config_dict, **{"train.optimizer.params.lr": 0.01})

    A top-level section may be replaced by name (``test={...}``). ``overrides``: ``--set`` texts
    (``"train.num_epochs=1"``, the value parsed as YAML), applied first. The config is copied, never changed.
    """
    run_options, pairs = split_options(options)
    return train_from_config(config, overrides=list(overrides) + pairs, **run_options)


def split_options(options: Dict[str, object]) -> Tuple[Dict[str, object], List[Tuple[str, object]]]:
    """``(run options, [(config key path, value), ...])`` of :func:`train`'s keywords."""
    run_options, pairs = {}, []
    for name, value in options.items():
        if name in RUN_OPTIONS:
            run_options[name] = value
        elif "." in name or "__" in name:
            pairs.append((name.replace("__", "."), value))
        elif is_known_key([name]):
            pairs.append((name, value))
        else:
            raise ConfigError(f"distillkit.train() got the keyword {name!r}, which is neither an option of a run nor "
                              f"a config key path.", key_path=name, candidates=nearest_names(name, RUN_OPTIONS),
                              hint="Write a config value as a dotted path, e.g. train__num_epochs=1 or "
                                   "**{'train.num_epochs': 1}.")
    return run_options, pairs
