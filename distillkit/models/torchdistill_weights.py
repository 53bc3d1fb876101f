"""``pretrained: True`` for the CIFAR models that torchdistill publishes weights of.

torchdistill (0.x and 1.x alike) names a weight file ``cifar{num_classes}-{model}``, e.g.
``cifar10-resnet20``, and serves it from its v0.1.1 GitHub release.  The dataset is read from
``num_classes`` (10: CIFAR-10, 100: CIFAR-100).  Files go through torch.hub's cache, so one placed at
``torch.hub.get_dir()/checkpoints/<key>.pt`` is used with no network.  As in torchdistill, a model that has
no published weights for that dataset is built with random weights and a warning.
"""
from __future__ import annotations

import logging
import os
import pickle

import torch
from torch import nn

from ..errors import ConfigError

logger = logging.getLogger(__name__)

ROOT_URL = "https://github.com/yoshitomo-matsubara/torchdistill/releases/download/v0.1.1"
PUBLISHED = frozenset(
    [f"cifar10-resnet{depth}" for depth in (20, 32, 44, 56, 110)]
    + [f"cifar{n}-wide_resnet{arch}" for n in (10, 100) for arch in ("40_4", "28_10", "16_8")]
    + [f"cifar{n}-densenet_bc_k12_depth100" for n in (10, 100)]
)


def weights_url(key: str) -> str:
    """The URL torchdistill downloads ``key`` (``cifar10-resnet20``) from."""
    return f"{ROOT_URL}/{key}.pt"


def cached_path(key: str) -> str:
    """Where torch.hub keeps (and first looks for) the file of ``key``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights_url(key)))


def load_pretrained(model: nn.Module, name: str, num_classes: int, progress: bool = True) -> nn.Module:
    """Load torchdistill's published weights of ``name`` for CIFAR-``num_classes`` into ``model`` (strict)."""
    key = f"cifar{num_classes}-{name}"
    if key not in PUBLISHED:
        logger.warning("pretrained: True, but torchdistill publishes no weights %r (%s for num_classes %s); "
                       "the model keeps its random initial weights.", key, name, num_classes)
        return model
    url, path = weights_url(key), cached_path(key)
    try:
        state_dict = torch.hub.load_state_dict_from_url(url, progress=progress, map_location="cpu",
                                                        weights_only=True)
    except OSError as exc:  # URLError, HTTPError, timeouts, SSL errors, an unreadable cache directory
        raise ConfigError(
            f"{name}: pretrained weights for CIFAR-{num_classes} could not be fetched from {url} "
            f"({type(exc).__name__}: {getattr(exc, 'reason', exc)}). To use them offline, download that file "
            f"where there is network access and place it at {path} (torch.hub.get_dir()/checkpoints; "
            f"TORCH_HOME moves it), or set pretrained: False.", key_path="params.pretrained") from exc
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ConfigError(
            f"{name}: the cached weight file {path} could not be read ({type(exc).__name__}: {exc}). Delete it "
            f"so that it is downloaded again from {url}, or replace it with that file.",
            key_path="params.pretrained") from exc
    model.load_state_dict(state_dict)
    return model
