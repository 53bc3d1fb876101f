"""The segmentation job by hand in plain PyTorch (configs/segmentation/shapes/tat_tiny_fcn8_from_tiny_fcn16.yaml).

SyntheticShapes with the config's joint view (random resize, flip, crop, tensor, normalise), the frozen
tiny_fcn width-16 teacher and the width-8 student; forward hooks capture backbone.layer3 of both; the student's
query and value embeddings are 3x3 conv + BN (32 -> 64 channels); loss
``CE(out, y, ignore 255) + 0.03 * mean_b(L_patch_group + L_anchor)`` (2x2 patch grid in groups of 2, 4x4 anchors,
4 heads, no 1/sqrt(d)); SGD over the student and its embeddings, no schedule (the job drops it on both sides).
"""
import random

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from common import StepTimer, report, parse_args

MEAN, STD = [0.45] * 3, [0.25] * 3


def embed(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))


def attend(q, k, v, heads):
    """(b, c, n) maps: softmax_j(<q_i, k_j>) v_j per head (channels split head-major)."""
    b, c, n = q.shape
    q, k, v = (x.reshape(b, heads, -1, x.shape[-1]) for x in (q, k, v))
    weights = torch.matmul(q.transpose(2, 3), k).softmax(-1)            # (b, h, n, n)
    return torch.matmul(v, weights.transpose(2, 3)).reshape(b, -1, n)   # (b, c, n)


def patch_groups(x, n, m, g):
    """(b, c, H, W) -> (b * groups, g * c, ph * pw): raster-order patches, g consecutive ones along channels."""
    b, c, height, width = x.shape
    ph, pw = height // n, width // m
    x = x.reshape(b, c, n, ph, m, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, n * m // g, g * c, ph * pw)
    return x.reshape(-1, g * c, ph * pw)


def tat_seg(q, k, v, t):
    b = q.shape[0]
    gq, gk, gv, gt = (patch_groups(x, 2, 2, 2) for x in (q, k, v, t))
    patch = (attend(gq, gk, gv, 1) - gt).pow(2).reshape(b, -1).mean(1)
    pq, pk, pv, pt = (F.adaptive_avg_pool2d(x, 4).flatten(2) for x in (q, k, v, t))
    anchor = (attend(pq, pk, pv, 4) - pt).pow(2).reshape(b, -1).mean(1)
    return (patch + anchor).mean()


def shapes_loader(args):
    from distillkit.registry import DATASETS
    from distillkit.tasks.segmentation.collate import segmentation_collate
    from distillkit.tasks.segmentation.transforms import (CustomCompose, CustomNormalize, CustomRandomCrop,
                                                          CustomRandomHorizontalFlip, CustomRandomResize,
                                                          CustomToTensor)

    size = args.image_size
    view = CustomCompose([CustomRandomResize(size * 7 // 8, size * 5 // 4), CustomRandomHorizontalFlip(0.5),
                          CustomRandomCrop(size), CustomToTensor(), CustomNormalize(MEAN, STD)])
    dataset = DATASETS["SyntheticShapes"](num_samples=(args.warmup + args.steps) * args.batch_size, image_size=size,
                                          transforms=view)
    return DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, collate_fn=segmentation_collate,
                      sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(args.seed)))


def main():
    from distillkit.registry import MODELS

    args = parse_args(__doc__)
    random.seed(args.seed)
    device = torch.device(args.device)
    teacher = MODELS["tiny_fcn"](num_classes=4, width=16, aux_loss=True).to(device).eval().requires_grad_(False)
    student = MODELS["tiny_fcn"](num_classes=4, width=8).to(device).train()
    query, value = embed(32, 64).to(device).train(), embed(32, 64).to(device).train()
    features = {}
    teacher.backbone.layer3.register_forward_hook(lambda _m, _i, out: features.__setitem__("teacher", out))
    student.backbone.layer3.register_forward_hook(lambda _m, _i, out: features.__setitem__("student", out))
    parameters = list(student.parameters()) + list(query.parameters()) + list(value.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.05, momentum=0.9, weight_decay=0.0001)
    timer = StepTimer(args)
    for images, masks, _ in shapes_loader(args):
        images, masks = images.to(device), masks.to(device)
        with torch.no_grad():
            teacher(images)
        out = student(images)["out"]
        s, t = features["student"], features["teacher"]
        loss = F.cross_entropy(out, masks, ignore_index=255) + 0.03 * tat_seg(query(s), t, value(s), t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timer.tick()
    report("hand-written", args, timer, final_loss=loss.item())


if __name__ == "__main__":
    main()
