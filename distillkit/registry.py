"""One :class:`Registry` class and the registries distillkit builds from it.

Each registry maps a name used in a config (``type: 'KDLoss'``) to a callable.
``register`` works as a bare decorator (``@register_loss``) or with a name
(``@register_loss("MyLoss")``).  ``resolve`` looks the name up in the registry
and then in fallback namespaces (``torch.nn``, ``torchvision.models``, ...); a
miss raises :class:`~distillkit.errors.ConfigError` with the nearest names.
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, Iterable, Optional, Tuple

from .errors import ConfigError, nearest_names


def _describe(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class Registry:
    """A name -> callable table.

    Build contract, by registry:

    * ``LOSSES``: org terms are called ``crit(student_output, teacher_output, targets)``,
      sub terms ``crit(student_io_dict, teacher_io_dict, targets)`` (plus ``supp_dict=`` when their
      ``forward`` accepts it: the extra tensors a dataset wrapper returns); both built as
      ``cls(**params)``.  ``register_loss(term='org' | 'sub')`` declares which; a term placed
      on the other side of the criterion is refused when the criterion is built.
    * ``MODELS``: ``fn(**params) -> nn.Module``.
    * ``DATASETS``: ``cls(**params, transform=..., target_transform=...)``.
    * ``SPECIAL_MODULES``: ``cls(model, is_teacher, **params)`` with ``post_forward(io_dict)``
      (see :class:`distillkit.models.special.SpecialModule`).
    * ``OPTIMIZERS``: ``cls(parameters, **params)``; ``SCHEDULERS``: ``cls(optimizer, **params)``.
    * ``ADAPTATIONS``: ``cls(**params) -> nn.Module``, a layer a side's ``sequential`` inserts as ``+name``.
    * ``TRANSFORMS``: ``cls(**params)``, a callable on one sample.
    * ``TASKS``: ``cls()``, a :class:`distillkit.tasks.Task` (a task family: batches, evaluation, metrics).
    * ``COLLATE_FNS``: ``fn(samples) -> (images, targets, supp_dict)``, named by a loader's ``collate_fn``.
    """

    def __init__(self, name: str):
        self.name = name
        self._table: Dict[str, Callable] = {}
        self._meta: Dict[str, dict] = {}

    def register(self, obj: Optional[Callable] = None, name: Optional[str] = None, **meta):
        """Register ``obj`` under ``name`` (default: its ``__name__``), with optional ``meta`` facts.

        A name registered again by another object warns, naming both; the newer one wins."""
        if isinstance(obj, str):  # @register_x("Name")
            obj, name = None, obj

        def add(target: Callable) -> Callable:
            key = name or target.__name__
            old = self._table.get(key)
            if old is not None and old is not target and _describe(old) != _describe(target):
                warnings.warn(f"{self.name} {key!r} registered twice: {_describe(target)} replaces "
                              f"{_describe(old)}.", stacklevel=3)
            self._table[key] = target
            self._meta[key] = dict(meta)
            return target

        return add if obj is None else add(obj)

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def __getitem__(self, name: str) -> Callable:
        return self._table[name]

    def meta(self, name: str) -> dict:
        """The facts ``name`` was registered with (empty for fallbacks and unregistered names)."""
        return self._meta.get(name, {})

    def names(self) -> Iterable[str]:
        return sorted(self._table)

    def items(self):
        """``(name, obj)`` in registration order."""
        return list(self._table.items())

    def resolve(self, name: str, key_path: Optional[str] = None,
                fallbacks: Tuple[Tuple[str, object], ...] = ()) -> Callable:
        """Find ``name`` here, then in each ``(label, namespace)`` fallback.

        A fallback namespace is a module (or any object) whose attribute
        ``name`` is taken, or a callable ``(name) -> obj | None`` paired with a
        callable listing its names, given as ``(label, (lookup, list_names))``.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"expected the name of a {self.name} (a non-empty string), found {name!r}.",
                              key_path=key_path)
        if name in self._table:
            return self._table[name]
        known = list(self._table)
        labels = [f"distillkit's {self.name} registry"]
        for label, space in fallbacks:
            labels.append(label)
            if isinstance(space, tuple):
                lookup, list_names = space
                found = lookup(name)
                if found is not None:
                    return found
                known.extend(list_names())
            else:
                found = getattr(space, name, None)
                if callable(found) and not name.startswith("_"):
                    return found
                known.extend(n for n in dir(space) if not n.startswith("_"))
        raise ConfigError(f"unknown {self.name} {name!r}; it is not in " + ", nor in ".join(labels) + ".",
                          key_path=key_path, candidates=nearest_names(name, known))


LOSSES = Registry("loss")
MODELS = Registry("model")
DATASETS = Registry("dataset type")
SPECIAL_MODULES = Registry("special module")
TRANSFORMS = Registry("transform")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
DATASET_WRAPPERS = Registry("dataset wrapper")
ADAPTATIONS = Registry("adaptation module")
TASKS = Registry("task")
COLLATE_FNS = Registry("collate function")

LOSS_TERMS = ("org", "sub")


def register_loss(obj: Optional[Callable] = None, name: Optional[str] = None, *, term: Optional[str] = None,
                  aliases: Optional[dict] = None):
    """Register a loss term; ``term='org'`` (called on model outputs) or ``'sub'`` (on io_dicts) declares
    where it belongs in a GeneralizedCustomLoss, so a misplaced term fails when the criterion is built.
    ``aliases``: torchdistill 0.x parameter names it also accepts (``distillkit.utils.rename_params``)."""
    if term not in LOSS_TERMS + (None,):
        raise ValueError(f"register_loss(term=...) must be one of {LOSS_TERMS} or None, not {term!r}")
    return LOSSES.register(obj, name, term=term, aliases=aliases)


register_model = MODELS.register
register_dataset = DATASETS.register
register_special_module = SPECIAL_MODULES.register
register_transform = TRANSFORMS.register
register_optimizer = OPTIMIZERS.register
register_scheduler = SCHEDULERS.register
register_dataset_wrapper = DATASET_WRAPPERS.register
register_adaptation = ADAPTATIONS.register
register_task = TASKS.register
register_collate_fn = COLLATE_FNS.register
