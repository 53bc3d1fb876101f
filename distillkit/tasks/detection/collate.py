"""Detection batches: images of different sizes stay a list, and so do their target dicts."""
from __future__ import annotations

from ...registry import register_collate_fn


@register_collate_fn("coco_collate_fn")
def detection_collate(samples):
    """``[(image, target[, supp]), ...] -> (images list, targets list, supp dict)`` (torchdistill's
    ``coco_collate_fn``, which zips the samples; the supp dicts are gathered key by key)."""
    images = [sample[0] for sample in samples]
    targets = [sample[1] for sample in samples]
    supps = [sample[2] for sample in samples if len(sample) > 2]
    supp = {key: [s[key] for s in supps] for key in supps[0]} if supps else {}
    return images, targets, supp
