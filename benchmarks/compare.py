"""Side-by-side benchmark: each variant of a job as a whole process, alternated, minimum over repeats.

    python benchmarks/compare.py kd     # hand-written, distillkit defaults / speed / speed + cache, torchdistill
    python benchmarks/compare.py tat    # hand-written, distillkit defaults, distillkit speed
    python benchmarks/compare.py cache  # distillkit live teacher vs replayed teacher cache
    python benchmarks/compare.py settings  # the KD job with each speed setting alone vs defaults
    python benchmarks/compare.py seg    # segmentation (TaT, SyntheticShapes): hand-written vs distillkit's Trainer
    python benchmarks/compare.py input  # images/s per core: torchvision's ImageFolder vs distillkit's default
                                        # loader, decode: fast, TarShards (header-scan and webdataset readers)

Arguments after the job go to every variant (--device, --batch-size, --image-size, --warmup,
--steps, --workers).  Prints the ratios and the targets, writes everything as JSON (--out).
torchdistill is pip-installed into --torchdistill-dir for this benchmark only.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TAT_CONFIG = "configs/ilsvrc2012/tat/resnet18_from_resnet34_attn.yaml"
SEG_CONFIG = "configs/segmentation/shapes/tat_tiny_fcn8_from_tiny_fcn16.yaml"


def input_variants(device: str) -> dict:
    """The input job: torchvision's default path, each distillkit option (input_job.py)."""
    from distillkit.data import jpeg

    names = {"torchvision ImageFolder (PIL)": "torchvision", "distillkit default loader": "default",
             "decode: fast (torchvision dec.)": "fast-torchvision", "decode: fast (PIL draft)": "fast-pil"}
    if "simplejpeg" in jpeg.available_backends():
        names["decode: fast (simplejpeg)"] = "fast-simplejpeg"
    names.update({"decode: fast + CPU normalise": "fast-normalize", "TarShards full, fast": "shards-fast",
                  "TarShards 320px, pil": "shards320-pil", "TarShards 320px, fast": "shards320-fast",
                  "TarShards full, fast, wds reader": "shards-fast-wds",
                  "TarShards 320px, fast, wds reader": "shards320-fast-wds"})
    if device.startswith("cuda"):
        names["decode: cuda (nvJPEG)"] = "cuda"
        if importlib.util.find_spec("nvidia.dali") is not None:
            names["decode: dali"] = "dali"
    return {name: ["input_job.py", "--variant", variant] for name, variant in names.items()}


def prepare_input_data(directory: str, images: int) -> None:
    """An ImageFolder of ImageNet-sized JPEGs and its shards (full size, 320 px), for the input job."""
    from common import make_jpeg_folder

    from distillkit.tools.prepare import prepare

    folder = make_jpeg_folder(os.path.join(directory, "folder"), images)
    prepare(folder, os.path.join(directory, "shards"), shard_size=64, log=lambda *_: None)
    prepare(folder, os.path.join(directory, "shards320"), max_side=320, shard_size=64, log=lambda *_: None)


def variants(job: str, cache_dir: str, device: str = "cpu") -> dict:
    """{name: script and its own arguments}."""
    if job == "input":
        return input_variants(device)
    if job == "kd":
        return {"hand-written": ["hand_kd.py"],
                "distillkit defaults": ["distillkit_job.py", "--settings", "defaults"],
                "distillkit speed": ["distillkit_job.py", "--settings", "speed"],
                "distillkit speed + cache": ["distillkit_job.py", "--settings", "speed", "--cache", cache_dir],
                "torchdistill": ["torchdistill_kd.py"],
                **({"distillkit speed + compile": ["distillkit_job.py", "--settings", "speed", "--set",
                                                   "train.compile=true"]} if device.startswith("cuda") else {})}
    if job == "tat":
        return {"hand-written": ["hand_tat.py"],
                "distillkit defaults": ["distillkit_job.py", "--config", TAT_CONFIG, "--settings", "defaults"],
                "distillkit speed": ["distillkit_job.py", "--config", TAT_CONFIG, "--settings", "speed"]}
    if job == "seg":
        return {"hand-written": ["hand_seg.py"],
                "distillkit defaults": ["distillkit_job.py", "--config", SEG_CONFIG, "--settings", "defaults",
                                        "--own-data"]}
    if job == "settings":
        return {"distillkit defaults": ["distillkit_job.py"],
                **{name: ["distillkit_job.py", *[a for key in keys for a in ("--set", key)]]
                   for name, keys in SETTINGS.items()}}
    return {"live teacher": ["distillkit_job.py", "--settings", "defaults"],
            "cached teacher": ["distillkit_job.py", "--settings", "defaults", "--cache", cache_dir]}


SETTINGS = {  # each speed setting on its own (the settings job)
    "channels_last": ["train.channels_last=true"],
    "optimizer fused": ["train.optimizer.params.fused=true"],
    "optimizer foreach": ["train.optimizer.params.foreach=true"],
    "teacher inference_mode": ["train.teacher_inference_mode=true"],
    "amp bfloat16": ["train.amp={enabled: true, dtype: bfloat16}"],
    "compile": ["train.compile=true"],
}


# (name, slower variant, faster variant, target or None, what the target means)
RATIOS = {
    "kd": [("distillkit defaults / hand-written", "distillkit defaults", "hand-written", ("<=", 1.03)),
           ("torchdistill / distillkit speed", "torchdistill", "distillkit speed", (">=", None)),
           ("torchdistill / distillkit defaults", "torchdistill", "distillkit defaults", None),
           ("torchdistill / distillkit speed + cache", "torchdistill", "distillkit speed + cache", None),
           ("hand-written / distillkit speed", "hand-written", "distillkit speed", None),
           ("torchdistill / distillkit speed + compile", "torchdistill", "distillkit speed + compile", None)],
    "tat": [("distillkit defaults / hand-written", "distillkit defaults", "hand-written", ("<=", 1.03)),
            ("hand-written / distillkit speed", "hand-written", "distillkit speed", None)],
    "seg": [("distillkit defaults / hand-written", "distillkit defaults", "hand-written", ("<=", 1.05))],
    "cache": [("live / cached teacher", "live teacher", "cached teacher", None)],
    "settings": [(f"defaults / {name}", "distillkit defaults", name, None) for name in SETTINGS],
    "input": [("distillkit default / torchvision", "torchvision ImageFolder (PIL)", "distillkit default loader", None),
              ("fast / default (images/s per core)", "torchvision ImageFolder (PIL)", "decode: fast (torchvision dec.)",
               (">=", 1.6)),
              ("fast PIL draft / default", "torchvision ImageFolder (PIL)", "decode: fast (PIL draft)", None),
              ("fast simplejpeg / default", "torchvision ImageFolder (PIL)", "decode: fast (simplejpeg)", None),
              ("fast + CPU normalise / default", "torchvision ImageFolder (PIL)", "decode: fast + CPU normalise", None),
              ("shards full fast / default", "torchvision ImageFolder (PIL)", "TarShards full, fast", None),
              ("shards 320px pil / default", "torchvision ImageFolder (PIL)", "TarShards 320px, pil", None),
              ("shards 320px fast / default", "torchvision ImageFolder (PIL)", "TarShards 320px, fast", (">=", 3.0)),
              ("header reader / wds reader, full", "TarShards full, fast, wds reader", "TarShards full, fast", None),
              ("header reader / wds reader, 320px", "TarShards 320px, fast, wds reader", "TarShards 320px, fast",
               None)],
}


def ensure_torchdistill(directory: str, version: str) -> None:
    probe = subprocess.run([sys.executable, "-c", "import torchdistill"], env=dict(os.environ, PYTHONPATH=directory),
                           capture_output=True)
    if probe.returncode != 0:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", directory,
                        f"torchdistill=={version}"], check=True)


def run_variant(name: str, command: list, passthrough: list, env: dict) -> dict:
    completed = subprocess.run([sys.executable, os.path.join(HERE, command[0]), *command[1:], *passthrough],
                               cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if completed.returncode != 0 or not lines:
        sys.exit(f"{name} failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    result = json.loads(lines[-1][len("BENCH_RESULT "):])
    result["variant"] = name
    return result


def device_name(passthrough: list) -> str:
    device = passthrough[passthrough.index("--device") + 1] if "--device" in passthrough else \
        ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        return f"{device}: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=("kd", "tat", "seg", "cache", "settings", "input"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="JSON file (default benchmarks/results/<job>-<device>.json)")
    parser.add_argument("--torchdistill-dir", default=os.path.join(HERE, ".torchdistill"))
    parser.add_argument("--torchdistill-version", default="1.1.5")
    parser.add_argument("--images", type=int, default=256, help="input job: JPEGs generated")
    parser.add_argument("--only", action="append", help="a variant to run, by its name (repeat the option for "
                                                        "several; default: all of the job's)")
    args, passthrough = parser.parse_known_args()
    device = device_name(passthrough)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE, args.torchdistill_dir]))
    cache_dir = tempfile.mkdtemp(prefix="distillkit-cache-")
    if args.job == "input":
        sys.path[:0] = [ROOT, HERE]
    jobs = variants(args.job, cache_dir, device)
    if args.only:
        wanted = [name.strip() for name in args.only]
        unknown = [name for name in wanted if name not in jobs]
        if unknown:
            sys.exit(f"--only: unknown variant(s) {unknown}; the {args.job} job has {list(jobs)}")
        jobs = {name: command for name, command in jobs.items() if name in wanted}
    if args.job == "input":
        prepare_input_data(cache_dir, args.images)
        passthrough = [*passthrough, "--data", cache_dir]
    if "torchdistill" in jobs:
        ensure_torchdistill(args.torchdistill_dir, args.torchdistill_version)
    runs = []
    for name, command in jobs.items():  # a cached variant replays what one recording run writes first
        if "--cache" in command:
            runs.append(run_variant(f"recording run ({name})", command, passthrough, env))
    for repeat in range(args.repeats):
        order = list(jobs) if repeat % 2 == 0 else list(reversed(jobs))  # alternate, and flip the order
        for name in order:
            runs.append(dict(run_variant(name, jobs[name], passthrough, env), repeat=repeat))
            peak = runs[-1].get('max_allocated_mib', runs[-1]['peak_rss_mib'])
            print(f"repeat {repeat}: {name:31s} {runs[-1]['seconds']:8.3f} s  "
                  f"{runs[-1]['images_per_s']:8.1f} img/s  peak {peak:.0f} MiB", flush=True)
    shutil.rmtree(cache_dir, ignore_errors=True)
    best = {name: min((r for r in runs if r["variant"] == name), key=lambda r: r["seconds"]) for name in jobs}
    gpu = device.startswith("cuda")
    ratios, targets = {}, {}
    for label, slow, fast, target in RATIOS[args.job]:
        if slow not in best or fast not in best:
            continue
        ratios[label] = best[slow]["seconds"] / best[fast]["seconds"]
        if target is not None:
            op, bound = target
            bound = bound if bound is not None else (1.8 if gpu else 1.15)
            met = ratios[label] <= bound if op == "<=" else ratios[label] >= bound
            targets[label] = {"target": f"{op} {bound}", "measured": round(ratios[label], 3), "met": met}
    unit = "images, one core, start-up excluded" if args.job == "input" else "steps"
    print(f"\n{args.job} on {device}; minimum of {args.repeats} alternated runs of "
          f"{best[list(jobs)[0]]['steps']} {unit}")
    for name, result in best.items():
        memory = result.get("max_allocated_mib")
        print(f"  {name:31s} {result['seconds']:8.3f} s  {result['images_per_s']:8.1f} img/s  peak RSS "
              f"{result['peak_rss_mib']:.0f} MiB" + (f", max allocated {memory:.0f} MiB" if memory else ""))
    for label, value in ratios.items():
        line = f"  {label:36s} {value:.3f}x"
        if label in targets:
            line += f"   target {targets[label]['target']}: {'met' if targets[label]['met'] else 'NOT met'}"
        print(line)
    out = args.out or os.path.join(HERE, "results", f"{args.job}-{device.split(':')[0]}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as handle:
        json.dump({"job": args.job, "device": device, "torch": torch.__version__, "arguments": passthrough,
                   "repeats": args.repeats, "best": best, "ratios": ratios, "targets": targets, "runs": runs},
                  handle, indent=1)
    print(f"written {out}")


if __name__ == "__main__":
    main()
