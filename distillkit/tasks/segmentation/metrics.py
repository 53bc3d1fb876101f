"""Mean IoU and pixel accuracy from a confusion matrix (as torchvision's segmentation reference computes them).

``h[i, j]`` counts the pixels of true class ``i`` predicted as ``j``; pixels whose target is outside
``[0, num_classes)`` (the ignore index 255, padding) are not counted.  From the matrix summed over ranks:
pixel accuracy ``= sum_i h[i, i] / sum h``, per-class IoU ``= h[i, i] / (sum_j h[i, j] + sum_j h[j, i] - h[i, i])``,
mean IoU ``=`` the mean of the per-class IoUs (a class absent from both targets and predictions has IoU 0/0 = NaN
in torchvision's formula; distillkit leaves such classes out of the mean and says so in ``absent_classes``).
"""
from __future__ import annotations

from typing import Dict

import torch

from ...engine.distributed import all_reduce_sum


class ConfusionMatrix:
    def __init__(self, num_classes: int, device=None):
        self.num_classes = int(num_classes)
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)

    def update(self, targets: torch.Tensor, predictions: torch.Tensor) -> None:
        """Count ``(target, prediction)`` pairs of two same-shaped integer tensors."""
        targets, predictions = targets.flatten().long(), predictions.flatten().long()
        keep = (targets >= 0) & (targets < self.num_classes)
        index = self.num_classes * targets[keep] + predictions[keep].to(targets.device)
        self.matrix += torch.bincount(index, minlength=self.num_classes ** 2).reshape(self.matrix.shape).to(
            self.matrix.device)

    def reduce(self, ctx) -> None:
        """Sum the matrix over ranks (a no-op on one process)."""
        self.matrix = all_reduce_sum(self.matrix, ctx)

    def compute(self) -> Dict[str, object]:
        h = self.matrix.double()
        diag = h.diag()
        union = h.sum(1) + h.sum(0) - diag
        present = union > 0
        iou = torch.where(present, diag / union.clamp(min=1), torch.full_like(diag, float("nan")))
        total = h.sum().item()
        return {"miou": 100.0 * (iou[present].mean().item() if present.any() else 0.0),
                "pixel_acc": 100.0 * (diag.sum().item() / total if total else 0.0),
                "iou": [round(100.0 * v, 4) for v in iou.tolist()],
                "absent_classes": [i for i, p in enumerate(present.tolist()) if not p],
                "pixels": int(total)}
