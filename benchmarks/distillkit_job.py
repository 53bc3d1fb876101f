"""A shipped distillkit config run on FakeData for a fixed number of steps, through the real Trainer.

The config's datasets become FakeData with the same training view, validation and test are
dropped, pretrained weights are off (no download); everything else is the config's own.
``--settings defaults`` also removes the config's speed keys (amp, channels_last, compile);
``--settings speed`` sets channels_last, the optimizer's ``fused: true`` (where torch.optim has it)
and, on CUDA, bfloat16 autocast.
"""
import inspect
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import StepTimer, fake_data_params, parse_args, report, resident_batches, transform_steps  # noqa: E402

SPEED_KEYS = ("amp", "channels_last", "compile", "teacher_inference_mode", "teacher_cache")


def options(parser):
    parser.add_argument("--config", default="configs/ilsvrc2012/kd/resnet18_from_resnet34.yaml")
    parser.add_argument("--settings", choices=("defaults", "speed"), default="defaults")
    parser.add_argument("--cache", help="train.teacher_cache.dir (records on the first run, replays later)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], help="key.path=value overrides, applied last")
    parser.add_argument("--own-data", action="store_true", help="keep the config's generated dataset (SyntheticShapes: "
                        "sized to the job) instead of FakeData, and drop the schedule (the segmentation job)")


def bench_config(args):
    from distillkit.config import load_config
    from distillkit.config.overrides import apply_overrides
    from distillkit.config.validate import validate_config

    config = load_config(args.config)
    train = config["train"]
    loader = train["train_data_loader"]
    if args.own_data:
        own_data(config, args)
    else:
        params = dict(fake_data_params(args), transform_params=transform_steps(args.image_size))
        config["datasets"] = {"fake": {"type": "FakeData", "splits": {"train": {"dataset_id": loader["dataset_id"],
                                                                                 "params": params}}}}
    loader.update(batch_size=args.batch_size, num_workers=args.workers, random_sample=True)
    train.pop("val_data_loader", None)
    config.pop("test", None)
    train["num_epochs"] = 1
    for role in ("teacher_model", "student_model"):
        if not args.own_data:  # the segmentation job's models are distillkit's own, never downloaded
            config["models"][role].setdefault("params", {})["pretrained"] = False
        config["models"][role]["ckpt"] = None
    for key in SPEED_KEYS:
        train.pop(key, None)
    if args.settings == "speed":
        train["channels_last"] = True
        if args.device.startswith("cuda"):
            train["amp"] = {"enabled": True, "dtype": "bfloat16"}
        optimizer = train["optimizer"]
        if "fused" in inspect.signature(getattr(torch.optim, optimizer["type"])).parameters:
            optimizer["params"] = dict(optimizer.get("params") or {}, fused=True)
    if args.cache:
        train["teacher_cache"] = {"dir": args.cache, "top_k": args.top_k}
    apply_overrides(config, args.set)  # after the settings: --set measures one setting on its own
    validate_config(config)
    return config


def own_data(config, args) -> None:
    """The config's SyntheticShapes train split, (warmup + steps) batches of --image-size pixels, with the hand-written
    job's view (resize 7/8 to 5/4 of the size, flip, crop, tensor, normalise); no schedule."""
    for block in config["datasets"].values():
        split = block["splits"]["train"]["params"]
        size = args.image_size
        split.update(num_samples=(args.warmup + args.steps) * args.batch_size, image_size=size)
        resize, _, crop = split["transforms_params"][:3]
        resize["params"] = {"min_size": size * 7 // 8, "max_size": size * 5 // 4}
        crop["params"] = {"size": size}
        block["splits"] = {"train": block["splits"]["train"]}
    config["train"].pop("scheduler", None)


class ResidentLoader:
    """Device-resident batches in place of the training loader (``--data resident``): the trainer's step alone."""

    def __init__(self, batches, loader):
        self.batches, self.sampler, self.batch_size, self.dataset = batches, loader.sampler, loader.batch_size, \
            loader.dataset

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter([(images, targets, {}) for images, targets in self.batches])


def main():
    from distillkit.engine.distributed import setup_distributed
    from distillkit.runner import seed_everything
    from distillkit.engine.trainer import Trainer
    from distillkit.experiment import build_experiment

    args = parse_args(__doc__, options)
    ctx = setup_distributed(args.device)
    config = bench_config(args)
    seed_everything(args.seed)
    experiment = build_experiment(config, ctx, args.seed)
    if args.data == "resident" and not args.cache:  # the cache needs the loader's indices: it keeps the pipeline
        experiment.train_loader = ResidentLoader(resident_batches(args), experiment.train_loader)
    timer = StepTimer(args)
    last = {}

    class TimeSteps:  # a Trainer callback: times each step, keeps the last step's values
        def on_step_end(self, trainer, values):
            last["values"] = values
            timer.tick()

    trainer = Trainer(experiment, callbacks=[TimeSteps()])
    trainer.train_mode()
    row = trainer.train_one_epoch(0)
    cache = experiment.teacher_cache
    variant = f"distillkit {args.settings}" + ("" if cache is None else
                                                " (cache replay)" if cache.replaying else " (cache record)")
    report(variant, args, timer, final_loss=last["values"]["loss"].item(), mean_loss=row.get("loss"))


if __name__ == "__main__":
    main()
