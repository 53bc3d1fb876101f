"""The generic runner, with the command line of torchdistill 0.x / TaT's examples/image_classification.py.

    torchrun --nproc_per_node=8 examples/image_classification.py --config CONFIG --log LOG [-adjust_lr]

distillkit additions: ``--set key.path=value`` (repeatable), ``--run-dir DIR``, ``--debug``.
Everything else is ``distillkit.engine.run.train_from_config``.
"""
import argparse
import json
import logging
import os
import sys

from distillkit.cli import guarded
from distillkit.engine.distributed import is_main_process
from distillkit.engine.run import train_from_config


def get_argparser():
    parser = argparse.ArgumentParser(description="Knowledge distillation for image classification models")
    parser.add_argument("--config", required=True, help="yaml file path")
    parser.add_argument("--device", default=None, help="device (default: cuda when available, else cpu)")
    parser.add_argument("--log", help="log file path")
    parser.add_argument("--start_epoch", default=0, type=int, metavar="N", help="start epoch")
    parser.add_argument("--seed", type=int, default=0, help="seed in random number generator")
    parser.add_argument("-test_only", action="store_true", help="only test the models")
    parser.add_argument("-student_only", action="store_true", help="test the student model only")
    parser.add_argument("--world_size", default=1, type=int, help="number of distributed processes")
    parser.add_argument("--dist_url", default="env://", help="url used to set up distributed training")
    parser.add_argument("-adjust_lr", action="store_true", help="multiply the learning rate by the world size")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    parser.add_argument("--run-dir", default=None, help="run directory (default: runs/<experiment>-<time>)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def main(args):
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if args.world_size not in (1, world_size):
        logging.getLogger("distillkit").warning("--world_size %d differs from torchrun's WORLD_SIZE %d; "
                                                "torchrun's value is used.", args.world_size, world_size)
    results = train_from_config(args.config, args.overrides, args.device, args.seed, args.run_dir, args.debug,
                                args.log, True if args.adjust_lr else None, args.test_only, args.student_only,
                                args.start_epoch)
    if args.run_dir and is_main_process() and not args.test_only:
        with open(os.path.join(args.run_dir, "results.json"), "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    parsed = get_argparser().parse_args()
    sys.exit(guarded(main, parsed, parsed.debug))
