"""``distillkit train | eval | check | modules | export | plot`` from the command line.

Errors a user can cause print as one paragraph (no traceback) unless ``--debug``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import List, Optional

from .config.overrides import parse_override
from .engine.distributed import is_main_process
from .errors import ConfigError, DistillkitError
from .runner import evaluate_from_config, train_from_config
from .tasks import summarize
from .tools import prepare as prepare_tool
from .tools.check import check_config
from .tools.convert import convert_config
from .tools.export import export_student
from .tools.export_formats import FORMATS as EXPORT_FORMATS
from .tools.modules import module_table
from .tools.plot import plot_runs


def _add_common(parser: argparse.ArgumentParser, positional_config: bool = True) -> None:
    if positional_config:
        parser.add_argument("config", help="the YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value (repeatable); the value is parsed as YAML")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--strict", action="store_true",
                        help="refuse config keys distillkit does not read (default: a warning names each)")


def add_train_options(parser: argparse.ArgumentParser, positional_config: bool = True) -> None:
    """The options of a training run, shared by ``distillkit train`` and examples/image_classification.py."""
    _add_common(parser, positional_config)
    parser.add_argument("--seed", type=int, default=0, help="seed of every random number generator")
    parser.add_argument("--run-dir", default=None, help="where logs, metrics and checkpoints go "
                                                        "(default: runs/<experiment>-<time>)")
    parser.add_argument("--log", default=None, help="an extra text log file")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="PATH",
                        help="continue a run: its latest checkpoint (with --run-dir; none yet: start it), or the "
                             "checkpoint PATH")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="with --resume: continue although the config differs from the run's config.yaml")
    parser.add_argument("--scale-lr", dest="scale_lr", action="store_true", default=None,
                        help="multiply the learning rate by the world size (also train.scale_lr: true)")
    parser.add_argument("-adjust_lr", "--adjust-lr", dest="adjust_lr", action="store_true",
                        help="TaT's flag, kept for its scripts: the learning rate is NOT scaled (see --scale-lr)")
    parser.add_argument("-test_only", "--test-only", dest="test_only", action="store_true",
                        help="only test the models (no training)")
    parser.add_argument("-student_only", "--student-only", dest="student_only", action="store_true",
                        help="test the student model only")
    parser.add_argument("--start_epoch", "--start-epoch", dest="start_epoch", default=0, type=int, metavar="N",
                        help="first epoch to train (0-based)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillkit", description="Config-driven knowledge distillation.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train (a teacher, a student alone, or a distilled student)")
    add_train_options(train)
    evaluate = commands.add_parser("eval", help="the task's metrics on the test loader (top-1/top-5, COCO mAP)")
    _add_common(evaluate)
    evaluate.add_argument("--ckpt", default=None, help="weights to evaluate (default: the model's ckpt)")
    evaluate.add_argument("--teacher", action="store_true", help="evaluate the teacher instead of the student")
    check = commands.add_parser("check", help="build everything and run one training step; saves nothing")
    _add_common(check)
    check.add_argument("--seed", type=int, default=0, help="seed of every random number generator")
    modules = commands.add_parser("modules", help="module paths and output shapes of a model, for forward_hook")
    modules.add_argument("model", help="a model name (distillkit registry, torchvision, timm or timm:<name>)")
    modules.add_argument("--input-size", type=int, nargs=3, default=[3, 224, 224], metavar=("C", "H", "W"))
    modules.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                         help="a model param (repeatable), e.g. --param num_classes=10")
    modules.add_argument("--debug", action="store_true")
    export = commands.add_parser("export", help="the student's weights alone, for its own model class")
    _add_common(export)
    export.add_argument("--ckpt", required=True, help="a run checkpoint or the student's ckpt")
    export.add_argument("--out", required=True, help="the file to write (--format timm: a folder)")
    export.add_argument("--format", dest="export_format", choices=EXPORT_FORMATS, default="pt",
                        help="pt: {'model': state_dict} (default); safetensors; onnx (dynamic batch axis); "
                             "torchscript (traced); timm: a folder timm.create_model('local-dir:OUT') loads")
    export.add_argument("--input-size", type=int, nargs=3, default=None, metavar=("C", "H", "W"),
                        help="the traced input (default: the shape of an image of the config's test data)")
    prepare = commands.add_parser("prepare", help="an ImageFolder as tar shards (optionally re-encoded smaller)")
    prepare_tool.add_arguments(prepare)
    convert = commands.add_parser("convert", help="print the config in the other torchdistill generation's form "
                                                   "(0.x <-> 1.x)")
    convert.add_argument("config")
    convert.add_argument("--to", choices=("0.x", "1.x"), default=None, help="the form to write (default: the other)")
    convert.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    convert.add_argument("--debug", action="store_true")
    plot = commands.add_parser("plot", help="PNG curves of each loss term and validation metric, one line per run")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--out", default=None, help="where the PNGs go (default: the run directory of one run, else "
                                                   "plots/)")
    plot.add_argument("--debug", action="store_true")
    return parser


def train(args: argparse.Namespace) -> int:
    """A training run from parsed train options; prints the outcome on rank 0."""
    results = train_from_config(args.config, overrides=args.overrides, device=args.device, seed=args.seed,
                                run_dir=args.run_dir, debug=args.debug, log_file=args.log, scale_lr=args.scale_lr,
                                test_only=args.test_only, student_only=args.student_only,
                                start_epoch=args.start_epoch, resume=args.resume,
                                allow_config_change=args.allow_config_change, strict=args.strict)
    if not is_main_process():
        return 0
    if results.get("preempted"):
        command = ["distillkit", "train", args.config, "--run-dir", results["run_dir"], "--resume"]
        command += [part for text in args.overrides for part in ("--set", text)]
        print(f"preempted: a resumable checkpoint is in {results['run_dir']}/checkpoints; continue with "
              f"{shlex.join(command)}")
    elif results.get("student"):
        student = results["student"]
        mean = " (the mean of the students)" if "students" in student else ""
        print(f"student test {summarize(student)}{mean}")
        for name, result in student.get("students", {}).items():  # models.students
            print(f"  student {name}: {summarize(result)}")
    else:
        print("nothing was trained or tested (train.num_epochs is 0, or there is no test loader).")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "train":
        return train(args)
    if args.command == "eval":
        result = evaluate_from_config(args.config, ckpt=args.ckpt, teacher=args.teacher, overrides=args.overrides,
                                      device=args.device, strict=args.strict)
        if is_main_process():
            each = bool(result) and all(isinstance(v, dict) for v in result.values())  # several models: each
            for name, one in (result.items() if each else [("", result)]):
                print(f"{name + ': ' if name else ''}{summarize(one)}")
        return 0
    if args.command == "check":
        print(check_config(args.config, args.overrides, args.device, seed=args.seed, strict=args.strict))
        return 0
    if args.command == "modules":
        params = {}
        for text in args.param:
            parts, value = parse_override(text)
            params[".".join(parts)] = value
        print(module_table(args.model, args.input_size, params))
        return 0
    if args.command == "export":
        print(export_student(args.config, args.ckpt, args.out, args.overrides, fmt=args.export_format,
                             input_size=args.input_size))
        return 0
    if args.command == "prepare":
        return prepare_tool.run(args)
    if args.command == "convert":
        print(convert_config(args.config, args.overrides, args.to), end="")
        return 0
    if args.command == "plot":
        for path in plot_runs(args.run_dirs, args.out):
            print(f"wrote {path}")
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
        if is_main_process() or not isinstance(exc, ConfigError):  # every rank raises the same config error
            print(f"distillkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distillkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
