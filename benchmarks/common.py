"""What every benchmark process shares: its arguments, the job's FakeData, a step timer, the result line.

Each variant runs as its own process (``python benchmarks/<variant>.py ...``) and prints one line
``BENCH_RESULT {json}``; ``compare.py`` starts them alternately and reads that line.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def parse_args(description: str, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=8, help="timed steps")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=("pipeline", "resident"), default=None,
                        help="pipeline: FakeData through a DataLoader each step (the CPU default); resident: the same "
                             "batches made once and kept on the device, the step alone (the CUDA default)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.data is None:
        args.data = "resident" if args.device.startswith("cuda") else "pipeline"
    torch.manual_seed(args.seed)
    return args


def transform_steps(size: int) -> list:
    """The training view of the job, as distillkit transform_params (RandomResizedCrop, flip, tensor, normalize)."""
    return [{"type": "RandomResizedCrop", "params": {"size": size}},
            {"type": "RandomHorizontalFlip", "params": {"p": 0.5}},
            {"type": "ToTensor", "params": None},
            {"type": "Normalize", "params": {"mean": list(MEAN), "std": list(STD)}}]


def fake_data_params(args) -> dict:
    """torchvision FakeData arguments: (warmup + steps) batches of 1000-class images."""
    return {"size": (args.warmup + args.steps) * args.batch_size, "image_size": [3, args.image_size, args.image_size],
            "num_classes": 1000}


def fake_dataset(args):
    from torchvision import datasets
    from torchvision import transforms as T

    transform = T.Compose([T.RandomResizedCrop(args.image_size), T.RandomHorizontalFlip(0.5), T.ToTensor(),
                           T.Normalize(MEAN, STD)])
    return datasets.FakeData(transform=transform, **fake_data_params(args))


def fake_loader(args):
    """The job's loader, shuffled by its own generator seeded with ``--seed`` (as distillkit's sampler is)."""
    from torch.utils.data import DataLoader, RandomSampler

    dataset = fake_dataset(args)
    return DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers,
                      sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(args.seed)),
                      pin_memory=torch.device(args.device).type == "cuda")


def resident_batches(args, distinct: int = 4) -> list:
    """The loader's first ``distinct`` batches (same seed, same order), moved to the device once and cycled
    for the ``warmup + steps`` steps: synthetic data that costs the step nothing, for measuring the GPU step
    alone.  They stay allocated: at batch 128, 224 px, 4 batches add ~300 MiB to the reported peak."""
    device = torch.device(args.device)
    made = []
    for images, targets in fake_loader(args):
        made.append((images.to(device), targets.to(device)))
        if len(made) == distinct:
            break
    return [made[i % len(made)] for i in range(args.warmup + args.steps)]


def batches(args):
    """What a job's loop iterates: ``resident_batches`` or the FakeData loader (``--data``)."""
    return resident_batches(args) if args.data == "resident" else fake_loader(args)


class StepTimer:
    """Counts finished steps; times the ``steps`` after the first ``warmup`` (the device synchronised at both ends)."""

    def __init__(self, args):
        self.warmup, self.steps, self.device = args.warmup, args.steps, torch.device(args.device)
        self.done = 0
        self.start = self.end = None

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def tick(self) -> None:
        self.done += 1
        if self.done == self.warmup:
            self.start = self._now()
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
        elif self.done == self.warmup + self.steps:
            self.end = self._now()

    @property
    def seconds(self) -> float:
        if self.end is None:
            raise RuntimeError(f"only {self.done} of {self.warmup + self.steps} steps ran")
        return self.end - self.start


def peak_memory_mib(device: str) -> dict:
    """Peak resident memory of this process (CPU) and peak allocated GPU memory (CUDA)."""
    result = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.device(device).type == "cuda":
        result["max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def hand_written_loop(args, optimizer, compute_loss) -> None:
    """The plain PyTorch training loop of the hand-written jobs: ``compute_loss(images, targets)`` is one step's
    forward; then zero_grad(set_to_none), backward, step; reports the timing and the last step's loss."""
    device = torch.device(args.device)
    timer = StepTimer(args)
    for images, targets in batches(args):
        loss = compute_loss(images.to(device, non_blocking=True), targets.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timer.tick()
    report("hand-written", args, timer, final_loss=loss.item())


def report(variant: str, args, timer: StepTimer, **extra) -> None:
    result = {"variant": variant, "seconds": timer.seconds, "steps": timer.steps,
              "images_per_s": timer.steps * args.batch_size / timer.seconds, **peak_memory_mib(args.device), **extra}
    print("BENCH_RESULT " + json.dumps(result), flush=True)


def make_jpeg_folder(root: str, count: int = 256, classes: int = 4, quality: int = 90, seed: int = 0) -> str:
    """An ImageFolder of ``count`` JPEGs at ImageNet's typical sizes (70 % 500x375, 20 % 375x500, 10 % 500x333),
    quality ``quality``: smooth colour fields with fine texture, ~80-110 kB each as ImageNet's are."""
    import os

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(500, 375)] * 7 + [(375, 500)] * 2 + [(500, 333)]
    for k in range(count):
        width, height = sizes[k % len(sizes)]
        folder = os.path.join(root, f"class{k % classes:02d}")
        os.makedirs(folder, exist_ok=True)
        coarse = rng.integers(0, 256, (height // 24 + 2, width // 24 + 2, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
        texture = rng.normal(0, 14, (height, width, 1)) + rng.normal(0, 6, (height, width, 3))
        pixels = np.clip(base + texture, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{k:05d}.jpg"), quality=quality)
    return root
