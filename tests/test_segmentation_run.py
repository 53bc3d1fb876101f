"""A segmentation config trains, checkpoints by val_miou and evaluates through the CLI (the shapes demo, tiny)."""
import json
import os
import re

from distillkit.cli import main
from distillkit.runner import train_from_config
from tests.conftest import REPO

TEACHER = os.path.join(REPO, "configs", "segmentation", "shapes", "teacher_tiny_fcn.yaml")
TINY = ["datasets.shapes.splits.train.params.num_samples=8", "datasets.shapes.splits.val.params.num_samples=4",
        "datasets.shapes.splits.train.params.image_size=32", "datasets.shapes.splits.val.params.image_size=32",
        "datasets.shapes.splits.train.params.transforms_params.2.params.size=32",
        "train.train_data_loader.batch_size=4", "train.num_epochs=2", "models.student_model.params.width=4"]


def test_shapes_teacher_trains_and_eval_prints_the_miou_line(in_tmp, capsys):
    results = train_from_config(TEACHER, overrides=TINY, device="cpu", run_dir="run")
    student = results["student"]
    assert set(student) >= {"miou", "pixel_acc", "iou", "count"} and student["count"] == 4
    assert 0 <= student["miou"] <= 100 and len(student["iou"]) == 4
    with open("run/results.json") as f:
        assert json.load(f)["student"]["miou"] == student["miou"]
    with open("run/metrics.jsonl") as f:
        rows = [json.loads(line) for line in f if "val_miou" in line]
    assert len(rows) == 2 and all("val_pixel_acc" in row for row in rows)
    assert student["miou"] == max(row["val_miou"] for row in rows)  # the best checkpoint is the test's weights
    capsys.readouterr()
    assert main(["eval", TEACHER, "--device", "cpu", *[a for o in TINY for a in ("--set", o)]]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"mIoU \d+\.\d\d%, pixel accuracy \d+\.\d\d% on 4 images", line)
    assert line.startswith(f"mIoU {student['miou']:.2f}%")
