"""Transforms from config: ``[{type, params}, ...]`` -> one callable.

Each ``type`` is looked up in distillkit's transform registry, then in
``torchvision.transforms``.
"""
from __future__ import annotations

from typing import Optional

from torchvision import transforms as tv_transforms

from ..errors import ConfigError
from ..registry import TRANSFORMS, register_transform
from ..utils import call_with_params
from .timm_compat import patch_timm_posterize


def build_transform(spec, key_path: str, compose=None):
    """``spec`` is a list of ``{type, params}``; returns a Compose (or None for an empty list).  ``compose``: the
    name of the composing class instead (``CustomCompose`` for joint image + target steps)."""
    if spec is None:
        return None
    if not isinstance(spec, (list, tuple)):
        raise ConfigError(f"expected a list of {{type, params}} entries, found {type(spec).__name__}.",
                          key_path=key_path)
    steps = []
    for index, entry in enumerate(spec):
        path = f"{key_path}.{index}"
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"each transform needs a 'type', found {entry!r}.", key_path=path)
        cls = TRANSFORMS.resolve(entry["type"], key_path=f"{path}.type",
                                 fallbacks=(("torchvision.transforms", tv_transforms),))
        steps.append(call_with_params(cls, entry.get("params"), f"{path}.params"))
    if not steps:
        return None
    if compose is None:
        return tv_transforms.Compose(steps)
    return TRANSFORMS.resolve(compose, key_path=key_path, fallbacks=(("torchvision.transforms", tv_transforms),))(steps)


def maybe_transform(params: dict, key: str, key_path: str) -> Optional[object]:
    """Pop ``params[key]`` (a transform list) and build it."""
    return build_transform(params.pop(key, None), f"{key_path}.{key}")


@register_transform("create_transform")
def timm_create_transform(**params):
    """timm's ``create_transform`` (RandAugment ``auto_augment``, Random Erasing ``re_prob``, ...), as one step."""
    from timm.data import create_transform  # timm is imported only when a config asks for its transforms

    patch_timm_posterize()
    return create_transform(**params)
