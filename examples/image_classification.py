"""The generic runner, with the command line of torchdistill 0.x / TaT's examples/image_classification.py.

    torchrun --nproc_per_node=8 examples/image_classification.py --config CONFIG --log LOG [-adjust_lr]
    NUM_GPUS=8 ./train_local.sh CONFIG --log LOG -adjust_lr        # the same through the project's launcher

Its options are ``distillkit train``'s (one option set, ``distillkit.cli.add_train_options``), with the
config given as ``--config`` and torchdistill's ``--world_size`` / ``--dist_url`` accepted (torchrun's
environment decides).  As in TaT's code base, ``-adjust_lr`` leaves the learning rate as written;
``--scale-lr`` (or ``train.scale_lr: true``) multiplies it by the world size.  After a run, the test
results are in ``<run dir>/results.json``.
"""
import argparse
import logging
import os
import sys

from distillkit.cli import add_train_options, guarded, train


def get_argparser():
    parser = argparse.ArgumentParser(description="Knowledge distillation for image classification models")
    parser.add_argument("--config", required=True, help="yaml file path")
    add_train_options(parser, positional_config=False)
    parser.add_argument("--world_size", default=1, type=int, help="number of distributed processes (torchrun's)")
    parser.add_argument("--dist_url", default="env://", help="url used to set up distributed training (torchrun's)")
    return parser


def main(args):
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if args.world_size not in (1, world_size):
        logging.getLogger("distillkit").warning("--world_size %d differs from torchrun's WORLD_SIZE %d; "
                                                "torchrun's value is used.", args.world_size, world_size)
    return train(args)


if __name__ == "__main__":
    parsed = get_argparser().parse_args()
    sys.exit(guarded(main, parsed, parsed.debug))
