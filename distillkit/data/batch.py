"""Every loader yields one batch shape: ``(images, targets, supp_dict)``.

A dataset item is ``(image, target)`` or ``(image, target, supp)`` where ``supp`` is a dict
of extras (a dataset wrapper's indices, the teacher cache's view parameters, ...); batches
collate ``supp`` key by key, and it is ``{}`` when the items have none.
"""
from __future__ import annotations

from torch.utils.data import default_collate


def collate_batch(samples):
    """``[(image, target[, supp]), ...] -> (images, targets, supp_dict)``."""
    images = default_collate([sample[0] for sample in samples])
    targets = default_collate([sample[1] for sample in samples])
    supp = default_collate([sample[2] if len(sample) > 2 else {} for sample in samples])
    return images, targets, supp
