"""``distillkit prepare SRC OUT``: an ImageFolder tree -> tar shards that the ``TarShards`` dataset streams.

    distillkit prepare /data/imagenet/train /data/imagenet-shards/train --max-side 320 --workers 16

* the samples are shuffled (``--seed``) so every shard mixes the classes, then written ``--shard-size``
  per shard as ``shard-NNNNNN.tar``, WebDataset style: ``<key>.<ext>`` (the image) and ``<key>.cls``
  (the class index as text), keys ``000000000``, ``000000001``, ... in stream order;
* ``--max-side N`` re-encodes every image whose longer side exceeds N at that size (JPEG quality
  ``--quality``, Pillow's draft mode + antialiased bicubic resize); other images are copied byte for
  byte (FFCV stores ImageNet at 256-512 px for the same reason: decoding cost grows with the pixels);
* ``index.json`` lists the classes (the ImageFolder's ``classes``: class index i is the i-th folder in
  sorted order, as ImageFolder numbers them) and each shard's name and sample count.

Each shard is written to a temporary name and renamed when complete; ``index.json`` is written last.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import tarfile
import time
from typing import List, Optional, Sequence, Tuple

from PIL import Image

from ..data.shards import FORMAT, INDEX
from ..errors import DistillkitError


def reencode(data: bytes, max_side: Optional[int], quality: int) -> Tuple[bytes, Optional[str]]:
    """``(bytes, extension)``: the image at most ``max_side`` pixels on its longer side; the original bytes
    (and extension None) when it is small enough already."""
    if not max_side:
        return data, None
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if max(width, height) <= max_side:
        return data, None
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.format == "JPEG":
        image.draft("RGB", size)  # DCT-scaled decode to at least `size`
    image = image.convert("RGB").resize(size, Image.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue(), "jpg"


def _encode_one(job):
    path, max_side, quality = job
    with open(path, "rb") as handle:
        data = handle.read()
    data, ext = reencode(data, max_side, quality)
    if ext is None:
        ext = os.path.splitext(path)[1].lstrip(".").lower() or "jpg"
    return data, ext


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def prepare(src: str, out: str, max_side: Optional[int] = None, quality: int = 90, shard_size: int = 1000,
            seed: int = 0, shuffle: bool = True, workers: int = 0, log=print) -> dict:
    """Write the shards and ``index.json`` of the ImageFolder ``src`` into ``out``; returns the index."""
    from torchvision.datasets import ImageFolder

    if not os.path.isdir(src):
        raise DistillkitError(f"prepare: the source {src!r} is not a folder; expected an ImageFolder tree "
                              f"(one sub-folder of images per class).")
    try:
        folder = ImageFolder(src)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DistillkitError(f"prepare: {src!r} is not a usable ImageFolder tree: {exc}") from exc
    samples: List[Tuple[str, int]] = list(folder.samples)
    if shuffle:
        random.Random(seed).shuffle(samples)
    os.makedirs(out, exist_ok=True)
    jobs = [(path, max_side, quality) for path, _ in samples]
    if workers > 0:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers)
        encoded = pool.imap(_encode_one, jobs, chunksize=16)
    else:
        pool, encoded = None, map(_encode_one, jobs)
    shards, start = [], time.time()
    try:
        for first in range(0, len(samples), shard_size):
            name = f"shard-{len(shards):06d}.tar"
            tmp = os.path.join(out, name + ".tmp")
            count = 0
            with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
                for key in range(first, min(first + shard_size, len(samples))):
                    data, ext = next(encoded)
                    _add(tar, f"{key:09d}.{ext}", data)
                    _add(tar, f"{key:09d}.cls", str(samples[key][1]).encode())
                    count += 1
            os.replace(tmp, os.path.join(out, name))
            shards.append({"name": name, "count": count, "bytes": os.path.getsize(os.path.join(out, name))})
            log(f"{name}: {count} samples, {shards[-1]['bytes'] / 2 ** 20:.1f} MiB "
                f"({first + count}/{len(samples)}, {time.time() - start:.0f} s)")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    index = {"format": FORMAT, "classes": list(folder.classes), "total": len(samples), "shards": shards,
             "max_side": max_side, "quality": quality if max_side else None, "seed": seed, "shuffled": shuffle,
             "source": os.path.abspath(src)}
    tmp = os.path.join(out, INDEX + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(index, handle, indent=1)
    os.replace(tmp, os.path.join(out, INDEX))
    return index


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("src", help="an ImageFolder tree (one sub-folder of images per class)")
    parser.add_argument("out", help="the folder to write shard-*.tar and index.json into")
    parser.add_argument("--max-side", type=int, default=None, help="re-encode images larger than this (pixels)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of re-encoded images")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    parser.add_argument("--seed", type=int, default=0, help="the shuffle of the samples over the shards")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the ImageFolder order")
    parser.add_argument("--workers", type=int, default=0, help="processes re-encoding images")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def run(args: argparse.Namespace) -> int:
    index = prepare(args.src, args.out, args.max_side, args.quality, args.shard_size, args.seed,
                    not args.no_shuffle, args.workers)
    size = sum(s["bytes"] for s in index["shards"]) / 2 ** 20
    print(f"wrote {index['total']} samples of {len(index['classes'])} classes into {len(index['shards'])} shards "
          f"({size:.1f} MiB) in {args.out}; use it as datasets.<name>.type: TarShards, params.root: {args.out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="distillkit prepare", description=__doc__,
                                                   formatter_class=argparse.RawDescriptionHelpFormatter))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
