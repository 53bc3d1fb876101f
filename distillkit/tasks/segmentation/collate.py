"""Batches of segmentation samples: images padded with 0 and masks with the ignore index 255 to the largest
height and width in the batch (torchdistill's ``coco_seg_collate_fn`` / ``coco_seg_eval_collate_fn``, which share
this one function: both yield ``(images, masks, supp_dict)``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import default_collate

from ...registry import register_collate_fn
from .transforms import IGNORE_INDEX


def pad_stack(tensors: Sequence[torch.Tensor], fill) -> torch.Tensor:
    """Stack tensors whose last two sizes differ, padding right and bottom with ``fill``."""
    size = tuple(max(sizes) for sizes in zip(*[t.shape for t in tensors]))
    out = tensors[0].new_full((len(tensors),) + size, fill)
    for slot, tensor in zip(out, tensors):
        slot[..., :tensor.shape[-2], :tensor.shape[-1]].copy_(tensor)
    return out


def _mask(target) -> torch.Tensor:
    return target if isinstance(target, torch.Tensor) else torch.as_tensor(np.array(target), dtype=torch.int64)


@register_collate_fn("coco_seg_collate_fn")
def segmentation_collate(samples):
    """``[(image, mask[, supp]), ...] -> (images, masks, supp_dict)``."""
    images = pad_stack([sample[0] for sample in samples], 0)
    masks = pad_stack([_mask(sample[1]) for sample in samples], IGNORE_INDEX)
    supp = default_collate([sample[2] if len(sample) > 2 else {} for sample in samples])
    return images, masks, supp


register_collate_fn("coco_seg_eval_collate_fn")(segmentation_collate)
