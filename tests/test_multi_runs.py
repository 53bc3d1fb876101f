"""Runs with several teachers, mutual students and born-again generations: exact resume, the teacher cache,
`distillkit check`, and torchrun (2 gloo processes) against one process."""
import json
import re

import pytest
import torch

from distillkit.runner import train_from_config
from distillkit.tools.check import check_config
from tests.test_distributed import CONFIG, torchrun

DATA = CONFIG[:CONFIG.index("models:")].replace("size: 48", "size: 32").replace("size: 33", "size: 16") + """
test:
  test_data_loader: {dataset_id: 'fake/val', random_sample: False, batch_size: 8, num_workers: 0}
"""
TRAIN = """
  log_freq: 1000
  num_epochs: EPOCHS
  train_data_loader: {dataset_id: 'fake/train', random_sample: RANDOM, batch_size: BATCH, num_workers: 0}
  val_data_loader: {dataset_id: 'fake/val', random_sample: False, batch_size: 8, num_workers: 0}
  optimizer: {type: 'SGD', params: {lr: 0.2, momentum: 0.9}}
  scheduler: {type: 'StepLR', params: {step_size: 1, gamma: 0.5}}
"""
MODEL = "{name: 'tiny_convnet_no_bn', params: {num_classes: 4}, ckpt: CKPT}"
MULTI_TEACHER = DATA + f"""
models:
  teachers: {{a: {MODEL.replace('CKPT', '')}, b: {MODEL.replace('CKPT', 'teacher_b.pt')}}}
  student_model: {MODEL.replace('CKPT', '').replace('4}', '4, seed: 9}')}
train:{TRAIN}
  teachers: {{a: {{forward_hook: {{output: ['4']}}}}}}
  student: {{forward_hook: {{output: ['4']}}}}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {{criterion: {{type: 'MultiTeacherKDLoss', params: {{temperature: 2.0, ensemble: 'confidence'}}}},
               factor: 1.0}}
    sub_terms:
      fc: {{criterion: {{type: 'MSELoss', params: {{input: {{is_from_teacher: False, module_path: '4', io: 'output'}},
            target: {{is_from_teacher: True, module_path: '4', io: 'output'}}}}}}, factor: 0.1, teacher: a}}
"""
DML = DATA + f"""
models:
  students: {{a: {MODEL.replace('CKPT', 'a.pt')}, b: {MODEL.replace('CKPT', 'b.pt').replace('4}', '4, seed: 8}')}}}
train:{TRAIN}
  students: {{b: {{forward_hook: {{output: ['0']}}}}}}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {{criterion: {{type: 'KDLoss', params: {{temperature: 1.0, alpha: 1.0, beta: 1.0}}}}, factor: 1.0}}
"""
BORN_AGAIN = DATA + f"""
models:
  student_model: {MODEL.replace('CKPT', '')}
train:{TRAIN}
  born_again: {{generations: 2}}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {{criterion: {{type: 'KDLoss', params: {{temperature: 2.0, alpha: 0.5}}}}, factor: 1.0}}
"""


def write(tmp_path, text, epochs=2, batch=8, random=True, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text.replace("EPOCHS", str(epochs)).replace("BATCH", str(batch))
                    .replace("RANDOM", str(random)).replace("teacher_b.pt", str(tmp_path / "teacher_b.pt")))
    return str(path)


@pytest.fixture
def teacher_b(in_tmp):
    """A second teacher, different from the first (tiny_convnet_no_bn always starts from seed 7)."""
    from tests.dist_plugin import tiny_convnet_no_bn
    model = tiny_convnet_no_bn()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.5)
    torch.save({"model": model.state_dict()}, in_tmp / "teacher_b.pt")


class Stop(Exception):
    pass


class StopAfter:
    """Ends a run after epoch ``epoch`` (its checkpoint saved): a process killed at an epoch boundary."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, row):
        if epoch == self.epoch:
            raise Stop


def assert_resume_is_exact(config, stop_after, monkeypatch, tmp_path):
    """An uninterrupted run in straight/ and a run stopped after epoch ``stop_after`` then resumed, in cut/ (each
    folder its own ckpt files): the same weights, losses and results."""
    for folder in ("straight", "cut"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "straight")
    straight = train_from_config(config, device="cpu", run_dir="run")
    monkeypatch.chdir(tmp_path / "cut")
    with pytest.raises(Stop):
        train_from_config(config, device="cpu", run_dir="run", callbacks=[StopAfter(stop_after)])
    resumed = train_from_config(config, device="cpu", run_dir="run", resume="latest")
    a = torch.load(tmp_path / "straight/run/checkpoints/last.pt", weights_only=True)
    b = torch.load("run/checkpoints/last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    rows = [json.loads(line) for line in open("run/metrics.jsonl")]
    assert [r["loss"] for r in rows] == [json.loads(line)["loss"]
                                         for line in open(tmp_path / "straight/run/metrics.jsonl")]
    assert resumed == straight
    return straight, rows


def test_multi_teacher_resumes_exactly(in_tmp, teacher_b, monkeypatch):
    results, rows = assert_resume_is_exact(write(in_tmp, MULTI_TEACHER, epochs=3), 0, monkeypatch, in_tmp)
    assert set(rows[0]) >= {"loss/org", "loss/fc"}
    assert set(results["teachers"]) == {"a", "b"} and results["teachers"]["a"] != results["teachers"]["b"]


def test_teacher_cache_records_and_replays_every_teacher(in_tmp, teacher_b):
    text = MULTI_TEACHER.replace("teachers: {a: {forward_hook: {output: ['4']}}}", "teacher_cache: {dir: cache, "
                                 "top_k: 2}").replace("student: {forward_hook: {output: ['4']}}", "student: {}")
    text = text[:text.index("    sub_terms:")]
    config = write(in_tmp, text)
    live = train_from_config(config, device="cpu", run_dir="live")
    record = torch.load(sorted((in_tmp / "cache").iterdir())[0], weights_only=True)
    assert {"values/a", "values/b", "indices/a", "rest/b"} <= set(record) and record["values/a"].shape == (32, 2)
    replayed = train_from_config(config, device="cpu", run_dir="replayed")
    assert "replaying epoch 1" in open("replayed/train.log").read()
    a = torch.load("live/checkpoints/last.pt", weights_only=True)["model"]
    b = torch.load("replayed/checkpoints/last.pt", weights_only=True)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert live["student"] == replayed["student"]


def test_dml_resumes_exactly_with_a_checkpoint_and_columns_per_student(in_tmp, monkeypatch):
    results, rows = assert_resume_is_exact(write(in_tmp, DML, epochs=3), 1, monkeypatch, in_tmp)
    assert {"val_top1/a", "val_top1/b", "loss/a/org", "loss/b/org"} <= set(rows[0])
    assert rows[0]["val_top1"] == pytest.approx((rows[0]["val_top1/a"] + rows[0]["val_top1/b"]) / 2)
    assert set(results["student"]["students"]) == {"a", "b"}
    assert rows[-1]["val_top1/a"] != rows[-1]["val_top1/b"] or rows[0]["loss/a/org"] != rows[0]["loss/b/org"]
    state = torch.load("run/checkpoints/last.pt", weights_only=True)
    assert set(state["optimizer"]) == {"a", "b"} and set(state["scheduler"]) == {"a", "b"}
    for name in "ab":  # each student's best weights, by its own validation accuracy
        saved = torch.load(f"{name}.pt", weights_only=True)
        assert saved["best_metric"]["name"] == f"val_top1/{name}"
        assert saved["best_value"] == max(r[f"val_top1/{name}"] for r in rows)


class Generations:
    def __init__(self):
        self.final_students, self.teachers, self.first_students = {}, {}, {}

    def on_epoch_end(self, trainer, epoch, row):
        exp = trainer.exp
        copy = {k: v.clone() for k, v in exp.student.model.state_dict().items()}
        self.final_students[exp.stage] = copy
        if exp.teacher is not None and exp.stage not in self.teachers:
            self.teachers[exp.stage] = {k: v.clone() for k, v in exp.teacher.model.state_dict().items()}


def test_born_again_teacher_is_the_previous_generation(in_tmp):
    seen = Generations()
    train_from_config(write(in_tmp, BORN_AGAIN), device="cpu", run_dir="ban", callbacks=[seen])
    assert sorted(seen.teachers) == [1, 2]
    for stage in (1, 2):
        for key, value in seen.final_students[stage - 1].items():
            assert torch.equal(seen.teachers[stage][key], value), key
    rows = [json.loads(line) for line in open("ban/metrics.jsonl")]
    assert [r["stage"] for r in rows] == [1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("stop_after", [1, 2])  # the end of generation 0; inside generation 1
def test_born_again_resumes_exactly_across_generations(in_tmp, stop_after, monkeypatch):
    assert_resume_is_exact(write(in_tmp, BORN_AGAIN), stop_after, monkeypatch, in_tmp)


def test_check_shows_every_teacher_and_student(in_tmp, teacher_b):
    report = check_config(write(in_tmp, MULTI_TEACHER), device="cpu")
    assert "teacher a  Sequential  output: 4" in report and "teacher b  Sequential  (no hooks)" in report
    assert re.search(r"student +Sequential +output: 4", report) and re.search(r"teacher a +4 +output +\(8, 4\)", report)
    report = check_config(write(in_tmp, DML, name="dml.yaml"), device="cpu")
    assert "student a  Sequential  (no hooks)" in report and "student b  Sequential  output: 0" in report
    assert "b/org" in report


@pytest.mark.parametrize("mode", ["multi_teacher", "dml", "born_again"])
def test_two_processes_reach_the_weights_of_one(in_tmp, teacher_b, mode, monkeypatch):
    text = {"multi_teacher": MULTI_TEACHER, "dml": DML, "born_again": BORN_AGAIN}[mode]
    for folder in ("one", "two"):  # each run its own ckpt files
        (in_tmp / folder).mkdir()
    monkeypatch.chdir(in_tmp / "one")
    train_from_config(write(in_tmp, text, epochs=1, batch=8, random=False), device="cpu", run_dir="run")
    two = torchrun(2, "train", write(in_tmp, text, epochs=1, batch=4, random=False, name="two.yaml"),
                   "--run-dir", "run", "--device", "cpu", cwd=in_tmp / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    single = torch.load(in_tmp / "one" / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    double = torch.load(in_tmp / "two" / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key in single:
        torch.testing.assert_close(double[key], single[key], rtol=1e-4, atol=1e-5)
