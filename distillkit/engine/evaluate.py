"""Top-1 / top-5 accuracy over a loader, counted once per sample and reduced over ranks."""
from __future__ import annotations

from typing import Callable, Dict

import torch

from .amp import evaluation_autocast
from .distributed import DistContext, all_reduce_sum


def classification_logits(output):
    """The logits to score: a model returning several heads is scored on their mean."""
    if isinstance(output, (tuple, list)):
        return torch.stack([o.float() for o in output]).mean(0)
    return output


@torch.no_grad()
def evaluate(forward: Callable, loader, ctx: DistContext, amp=None) -> Dict[str, float]:
    """``forward(images) -> logits`` over ``loader``; returns top1, top5 (percent) and count."""
    totals = torch.zeros(3, dtype=torch.float64, device=ctx.device)
    for images, targets, *_ in loader:
        images = images.to(ctx.device, non_blocking=True)
        targets = targets.to(ctx.device, non_blocking=True)
        with evaluation_autocast(amp):
            logits = classification_logits(forward(images))
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hits = top.eq(targets.view(-1, 1))
        totals += torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum(),
                               torch.tensor(targets.numel(), device=ctx.device)]).to(totals)
    totals = all_reduce_sum(totals, ctx)
    count = max(totals[2].item(), 1.0)
    return {"top1": 100.0 * totals[0].item() / count, "top5": 100.0 * totals[1].item() / count,
            "count": int(totals[2].item())}


def evaluate_side(side, loader, ctx: DistContext, amp, task) -> Dict[str, float]:
    """``task``'s metrics of one ModelSide's whole model (as torchdistill: not the ``sequential`` part a stage
    trains), in eval mode; the side's training mode is restored after."""
    was_training = side.training
    side.eval()
    side.model.eval()
    result = task.evaluate(side.model, loader, ctx, amp)
    side.model.train(was_training)
    side.train(was_training)
    return result
