"""``distillkit train | eval`` from the command line.

Errors a user can cause print as one paragraph (no traceback) unless ``--debug``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .errors import DistillkitError


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value (repeatable); the value is parsed as YAML")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillkit", description="Config-driven knowledge distillation.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train (a teacher, a student alone, or a distilled student)")
    _add_common(train)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--run-dir", default=None, help="where logs, metrics and checkpoints go "
                                                       "(default: runs/<experiment>-<time>)")
    train.add_argument("--log", default=None, help="an extra text log file")
    train.add_argument("--adjust-lr", action="store_true", default=None,
                       help="scale the learning rate by the world size")
    evaluate = commands.add_parser("eval", help="top-1/top-5 on the test loader")
    _add_common(evaluate)
    evaluate.add_argument("--ckpt", default=None, help="weights to evaluate (default: the model's ckpt)")
    evaluate.add_argument("--teacher", action="store_true", help="evaluate the teacher instead of the student")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from .engine.run import train_from_config

        results = train_from_config(args.config, args.overrides, args.device, args.seed, args.run_dir,
                                    args.debug, args.log, args.adjust_lr)
        student = results.get("student") or {}
        if student and int(os.environ.get("RANK", "0")) == 0:
            print(f"student test top-1 {student['top1']:.2f}% top-5 {student['top5']:.2f}%")
        return 0
    if args.command == "eval":
        from .engine.run import evaluate_from_config

        result = evaluate_from_config(args.config, args.ckpt, args.teacher, args.overrides, args.device)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"top-1 {result['top1']:.2f}% top-5 {result['top5']:.2f}% on {result['count']} images")
        return 0
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(run, args, args.debug)


def guarded(fn, args, debug: bool) -> int:
    """Run ``fn(args)``; a DistillkitError prints as one paragraph and exits 2 (traceback with --debug)."""
    try:
        return fn(args)
    except DistillkitError as exc:
        if debug:
            raise
        print(f"distillkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distillkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
