"""Tar readers side by side: distillkit's header scan vs webdataset's tar iterator, CPU time per sample.

    python benchmarks/shard_readers.py [--images 512] [--shard-size 64] [--repeats 5]

Generates ImageNet-sized JPEGs (common.make_jpeg_folder), writes them with ``distillkit prepare`` at full size
and at a 320 px maximum side, and reads every shard with each reader: ``header scan`` (tar_reader.read_shard,
what TarShards uses for local paths), ``webdataset`` (gopen + tar_file_expander + group_by_keys on the path,
what TarShards uses for URLs), ``webdataset pipe:cat`` (the same through a ``pipe:cat`` process), and both
readers reading only the last quarter of each shard (a worker's range or a resume starting inside a shard).
The figure is the best of ``--repeats`` in CPU time (``time.process_time``) per sample yielded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import make_jpeg_folder  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from distillkit.data.shard_sources import read_stream
    from distillkit.data.tar_reader import read_shard
    from distillkit.tools.prepare import prepare

    base = tempfile.mkdtemp(prefix="distillkit-readers-")
    folder = make_jpeg_folder(os.path.join(base, "folder"), args.images)
    skip = args.shard_size * 3 // 4
    results = {}
    for name, max_side in (("full size", None), ("320 px", 320)):
        out = os.path.join(base, name.replace(" ", ""))
        index = prepare(folder, out, max_side=max_side, shard_size=args.shard_size, log=lambda *_: None)
        paths = [os.path.join(out, s["name"]) for s in index["shards"]]
        readers = {"header scan": lambda p, s=0: read_shard(p, s), "webdataset": lambda p, s=0: read_stream(p, s),
                   "webdataset pipe:cat": lambda p, s=0: read_stream(f"pipe:cat {p}", s)}
        for label, skipped in (("", 0), (" (last quarter)", skip)):
            for reader, read in readers.items():
                if skipped and reader == "webdataset pipe:cat":
                    continue
                best = float("inf")
                for _ in range(args.repeats + 1):  # the first is a warm-up
                    start = time.process_time()
                    count = sum(1 for p in paths for _ in read(p, skipped))
                    best = min(best, time.process_time() - start)
                results[f"{name}: {reader}{label}"] = best * 1e6 / count
                print(f"{name:9s} {reader + label:36s} {best * 1e6 / count:8.1f} us CPU per sample", flush=True)
    print("BENCH_RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
