"""One input-pipeline variant on one core: images per second of a training loader, start-up excluded.

    python benchmarks/input_job.py --data DIR --variant NAME [--batch-size 32] [--passes 2] [--device cpu]

DIR holds ``folder/`` (an ImageFolder of JPEGs), ``shards/`` and ``shards320/`` (``distillkit prepare``
of it, full size and at a 320 px maximum side); ``compare.py input`` writes them.  The loader runs in this
process (``--workers 0``, one torch thread) and the figure is its **CPU time** (``time.process_time``): the
cost per image on one core, which other jobs on a shared machine do not inflate as they inflate wall time
(wall time is recorded too).  The first batch is not timed (file-system warm-up, lazy imports); the rest of
``--passes`` passes over the data is.  The view is the
standard training one: RandomResizedCrop 224, horizontal flip, ToTensor, Normalize.

Variants: ``torchvision`` (ImageFolder + PIL + torchvision transforms, plain DataLoader: torchvision's
path), ``fast-<backend>`` (distillkit ``decode: fast``, JPEG backend pil | torchvision | simplejpeg; the
batches stay uint8), ``fast-normalize`` (``decode: fast`` plus the float conversion and normalisation on
this CPU, what a CPU-only run pays), ``shards-fast`` / ``shards320-pil`` / ``shards320-fast``
(TarShards, distillkit's header-scan reader), ``shards-fast-wds`` / ``shards320-fast-wds`` (the same shards
as ``file://`` URLs, read through webdataset's tar iterator), ``default`` (distillkit's ImageFolder loader
with no ``decode`` key: what a config gets by default), ``cuda`` / ``dali`` (GPU decoding of each batch,
timed with the device synchronised).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import MEAN, STD, peak_memory_mib  # noqa: E402

VARIANTS = ("torchvision", "fast-pil", "fast-torchvision", "fast-simplejpeg", "fast-normalize", "shards-fast",
            "shards320-pil", "shards320-fast", "shards-fast-wds", "shards320-fast-wds", "default", "cuda", "dali")


def transform_params(size: int) -> list:
    return [{"type": "RandomResizedCrop", "params": {"size": size}},
            {"type": "RandomHorizontalFlip", "params": {"p": 0.5}},
            {"type": "ToTensor", "params": None},
            {"type": "Normalize", "params": {"mean": list(MEAN), "std": list(STD)}}]


def torchvision_loader(args):
    from torch.utils.data import DataLoader, RandomSampler
    from torchvision import datasets
    from torchvision import transforms as T

    transform = T.Compose([T.RandomResizedCrop(args.image_size), T.RandomHorizontalFlip(0.5), T.ToTensor(),
                           T.Normalize(MEAN, STD)])
    dataset = datasets.ImageFolder(os.path.join(args.data, "folder"), transform=transform)
    return DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers,
                      sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(args.seed)))


def distillkit_loader(args, dataset_type: str, root, decode, **extra):
    from distillkit.config.schema import LoaderSettings
    from distillkit.data import build_datasets, build_loader

    params = {"root": root, "transform_params": transform_params(args.image_size), **extra}
    config = {"datasets": {"bench": {"type": dataset_type, "splits": {"train": {"dataset_id": "bench/train",
                                                                              "params": params}}}}}
    datasets = build_datasets(config)
    loader = {"dataset_id": "bench/train", "batch_size": args.batch_size, "num_workers": args.workers}
    if decode is not None:
        loader["decode"] = decode
    settings = LoaderSettings.parse(loader, "train.train_data_loader")
    return build_loader(settings, datasets, training=True, seed=args.seed)


def build(args):
    variant = args.variant
    if variant == "torchvision":
        return torchvision_loader(args)
    if variant.startswith("fast-") and variant != "fast-normalize":
        os.environ["DISTILLKIT_JPEG_BACKEND"] = variant[len("fast-"):]
    folder = os.path.join(args.data, "folder")
    if variant == "default":  # distillkit's loader with no decode key
        return distillkit_loader(args, "ImageFolder", folder, None)
    if variant.endswith("-wds"):  # the same shards as file:// URLs: read through webdataset's tar iterator
        import json

        shards = os.path.join(args.data, variant.split("-")[0])
        with open(os.path.join(shards, "index.json")) as handle:
            names = [s["name"] for s in json.load(handle)["shards"]]
        return distillkit_loader(args, "TarShards", [f"file://{os.path.join(shards, n)}" for n in names], "fast",
                                 index=os.path.join(shards, "index.json"))
    if variant.startswith("fast") or variant in ("cuda", "dali"):
        return distillkit_loader(args, "ImageFolder", folder, variant if variant in ("cuda", "dali") else "fast")
    shards, decode = variant.split("-")
    return distillkit_loader(args, "TarShards", os.path.join(args.data, shards), decode)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="loader worker processes (timed: this process)")
    parser.add_argument("--seed", type=int, default=0)
    args, _ = parser.parse_known_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    loader = build(args)
    device = torch.device(args.device if args.variant in ("cuda", "dali", "fast-normalize") else "cpu")
    images_done, start = 0, None
    for epoch in range(args.passes):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for images, *_ in loader:
            if device.type == "cuda" or args.variant == "fast-normalize":
                images = images.to_device(device)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
            if start is None:  # the first batch: start-up, not timed
                start, cpu_start = time.perf_counter(), time.process_time()
                continue
            images_done += len(images)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    backend = None
    if args.variant != "torchvision":
        from distillkit.data import jpeg

        backend = jpeg.backend()
    # with workers or GPU decoding, this process's CPU time is not the cost of a view: wall time then
    timed = cpu_seconds if args.workers == 0 and device.type != "cuda" else seconds
    result = {"variant": args.variant, "seconds": timed, "cpu_seconds": cpu_seconds, "wall_seconds": seconds,
              "images": images_done, "steps": images_done, "images_per_s": images_done / timed,
              "jpeg_backend": backend, **peak_memory_mib("cpu")}
    import json

    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
