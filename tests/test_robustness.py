"""Everyday mistakes and faults end in one paragraph naming the file, key and fix; runs never clobber each other."""
import json
import logging
import os
import re
import resource
import subprocess
import sys
import time

import pytest
import torch

from distillkit.cli import main
from distillkit.config import load_config
from distillkit.engine.checkpoint import RunCheckpoints
from distillkit.errors import ConfigError, ShapeMismatchError
from distillkit.experiment import build_experiment
from distillkit.losses import KDLoss
from tests.conftest import child_env, run_cli, start_cli
from tests.test_end_to_end import DIGITS

QUICK = DIGITS.replace("ckpt: 'student.pt'", "ckpt: ").replace("num_epochs: 2", "num_epochs: 1")


def error_of(argv, capsys):
    """Exit status and stderr of ``distillkit ARGV``."""
    status = main(argv)
    return status, capsys.readouterr().err


@pytest.mark.parametrize("text", ["lr: 5e-4", "lr: 5E-4", "lr: 1e6", "lr: .5e-2"])
def test_numbers_without_a_dot_are_floats(write_yaml, text):
    config = load_config(write_yaml(QUICK.replace("lr: 0.05", text)))
    assert isinstance(config["train"]["optimizer"]["params"]["lr"], float)
    assert config["train"]["optimizer"]["params"]["lr"] == float(text.split(": ")[1])


def test_numbers_in_set_overrides_are_floats(write_yaml):
    config = load_config(write_yaml(QUICK), ["train.optimizer.params.lr=5e-4",
                                             "train.optimizer.params.weight_decay=1e-4"])
    assert config["train"]["optimizer"]["params"] == {"lr": 5e-4, "momentum": 0.9, "weight_decay": 1e-4}


@pytest.mark.parametrize("edit, key", [
    (("lr: 0.05", "lr: 0"), "train.optimizer.params.lr"),
    (("lr: 0.05", "lr: -0.1"), "train.optimizer.params.lr"),
    (("experiment: 'tiny'", "experiment: '" + "x" * 300 + "'"), "models.student_model.experiment"),
])
def test_values_no_one_means_are_refused_before_training(in_tmp, write_yaml, capsys, edit, key):
    status, err = error_of(["train", write_yaml(QUICK.replace(*edit)), "--device", "cpu", "--run-dir", "r"], capsys)
    assert status == 2 and f"key '{key}'" in err and "Traceback" not in err
    assert not os.path.exists("r/checkpoints") or not os.listdir("r/checkpoints")


def test_a_5000_digit_integer_is_named(write_yaml):
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(QUICK.replace("batch_size: 64", "batch_size: " + "9" * 5000)))
    assert "config.yaml" in str(info.value) and "digits" in str(info.value)


def test_zero_epochs_trains_nothing_and_says_so(in_tmp, write_yaml, capsys):
    assert main(["train", write_yaml(QUICK.replace("num_epochs: 1", "num_epochs: 0")), "--device", "cpu",
                 "--run-dir", "r"]) == 0
    out = capsys.readouterr().out
    assert "num_epochs is 0" in out and "nothing was trained" in out and "top-1" not in out


def test_binary_and_non_utf8_files_are_named(tmp_path):
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"train:\x00\x01\x02")
    with pytest.raises(ConfigError, match="NUL byte"):
        load_config(str(binary))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: 'caf\u00e9'\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(str(latin))
    assert "latin.yaml" in str(info.value) and "UTF-8" in str(info.value) and "line 1" in str(info.value)


def test_include_cycles_are_refused_naming_the_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("x: !include b.yaml\n")
    (tmp_path / "b.yaml").write_text("y: !include a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "a.yaml"), validate=False)
    assert "a.yaml -> " in str(info.value) and "b.yaml" in str(info.value)
    (tmp_path / "self.yaml").write_text("x: !include self.yaml\n")
    with pytest.raises(ConfigError, match="already being loaded"):
        load_config(str(tmp_path / "self.yaml"), validate=False)


def test_include_from_outside_the_folder_works_and_is_logged(tmp_path, caplog):
    (tmp_path / "shared.yaml").write_text("v: 3\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("x: !include ../shared.yaml\n")
    logger = logging.getLogger("distillkit")  # it does not propagate to the root logger once a run set it up
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger="distillkit"):
            config = load_config(str(tmp_path / "sub" / "c.yaml"), validate=False)
    finally:
        logger.removeHandler(caplog.handler)
    assert config["x"] == {"v": 3} and "outside the config's folder" in caplog.text


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases"):
        load_config(str(tmp_path / "bomb.yaml"), validate=False)
    assert time.perf_counter() - start < 10  # 9**10 values if expanded; refused from the node graph


def test_teacher_and_student_with_other_class_counts_are_named():
    with pytest.raises(ShapeMismatchError) as info:
        KDLoss(temperature=1.0, alpha=0.5)(torch.zeros(2, 3), torch.zeros(2, 1000), torch.zeros(2, dtype=torch.long))
    assert "models.student_model.params.num_classes" in str(info.value) and "1000" in str(info.value)


def test_a_misspelt_loss_param_names_the_key_and_the_nearest(write_yaml):
    text = QUICK.replace("org_term: {criterion: {type: 'CrossEntropyLoss', params: {}}, factor: 1.0}",
                         "org_term: {criterion: {type: 'KDLoss', params: {temprature: 2.0, alpha: 1.0}}, factor: 1.0}")
    with pytest.raises(ConfigError) as info:
        build_experiment(load_config(write_yaml(text)))
    assert "train.criterion.org_term.criterion.params" in str(info.value) and "'temperature'" in str(info.value)


def test_a_bad_loss_value_is_a_config_error_at_its_key(write_yaml):
    text = QUICK.replace("org_term: {criterion: {type: 'CrossEntropyLoss', params: {}}, factor: 1.0}",
                         "org_term: {criterion: {type: 'KDLoss', params: {temperature: 2.0, alpha: 1.0, "
                         "reduction: 'avg'}}, factor: 1.0}")
    with pytest.raises(ConfigError) as info:
        build_experiment(load_config(write_yaml(text)))
    assert "train.criterion.org_term.criterion.params.reduction" in str(info.value)


def wait_for(path, text, process, limit=600):
    """Poll ``path`` until it holds ``text`` (the process must still be alive); ``limit`` only bounds a hang."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if os.path.isfile(path) and text in open(path, encoding="utf-8").read():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_a_second_run_on_a_held_directory_is_refused_naming_the_holder(in_tmp, write_yaml):
    config = write_yaml(DIGITS.replace("ckpt: 'student.pt'", "ckpt: ").replace("num_epochs: 2", "num_epochs: 50"))
    first = start_cli("train", config, "--run-dir", "run", "--device", "cpu", "--set", "train.log_freq=1", cwd=in_tmp)
    try:
        wait_for(in_tmp / "run" / "train.log", "step 1/", first)
        second = run_cli("train", config, "--run-dir", "run", "--device", "cpu", cwd=in_tmp)
        assert second.returncode == 2 and f"pid {first.pid}" in second.stderr and "host" in second.stderr
    finally:
        first.kill()
        first.communicate()


def test_resume_into_new_or_foreign_directories(in_tmp, write_yaml, capsys):
    config = write_yaml(QUICK)
    assert main(["train", config, "--run-dir", "a", "--device", "cpu"]) == 0
    assert main(["train", config, "--run-dir", "b", "--device", "cpu"]) == 0
    capsys.readouterr()
    last = os.path.join("a", "checkpoints", "last.pt")
    status, err = error_of(["train", config, "--resume", last, "--run-dir", "b", "--device", "cpu",
                            "--set", "train.num_epochs=2"], capsys)
    assert status == 2 and "another run's checkpoints" in err
    assert main(["train", config, "--resume", last, "--run-dir", "c", "--device", "cpu", "--allow-config-change",
                 "--set", "train.num_epochs=2"]) == 0
    rows = [json.loads(line) for line in open("c/metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1] and os.path.isfile("c/checkpoints/epoch_0001.pt")


def test_resume_with_a_changed_config_is_refused_listing_the_keys(in_tmp, write_yaml, capsys):
    config = write_yaml(QUICK)
    assert main(["train", config, "--run-dir", "r", "--device", "cpu"]) == 0
    capsys.readouterr()
    status, err = error_of(["train", config, "--run-dir", "r", "--resume", "--device", "cpu",
                            "--set", "train.num_epochs=2", "--set", "train.optimizer.params.lr=0.01"], capsys)
    assert status == 2 and "train.num_epochs" in err and "train.optimizer.params.lr" in err
    assert "--allow-config-change" in err and "train.num_epochs" in open("r/train.log").read()
    assert main(["train", config, "--run-dir", "r", "--resume", "--device", "cpu", "--allow-config-change",
                 "--set", "train.num_epochs=2"]) == 0
    assert [f for f in os.listdir("r") if f.startswith("config.before-resume-")]


def test_resume_on_a_directory_without_checkpoints_starts_the_run(in_tmp, write_yaml, capsys):
    assert main(["train", write_yaml(QUICK), "--run-dir", "new", "--resume", "--device", "cpu"]) == 0
    assert "holds no checkpoints/last.pt yet; starting the run from scratch" in capsys.readouterr().out
    assert os.path.isfile("new/checkpoints/last.pt")


def test_a_fresh_start_after_a_failed_first_save_keeps_one_row_per_epoch(in_tmp, write_yaml):
    os.makedirs("r")
    with open("r/metrics.jsonl", "w") as handle:  # what a first attempt that could not save leaves
        handle.write(json.dumps({"epoch": 0, "loss": 1.0}) + "\n")
    os.makedirs("r/checkpoints")
    open("r/checkpoints/epoch_0000.pt.abc123.tmp", "wb").write(b"partial")
    assert main(["train", write_yaml(QUICK), "--run-dir", "r", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in open("r/metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [0] and "seconds" in rows[0]
    assert not [f for f in os.listdir("r/checkpoints") if f.endswith(".tmp")]


def test_preemption_checkpoints_never_push_out_the_last_whole_epoch(tmp_path):
    checkpoints = RunCheckpoints(str(tmp_path), keep_last=1)
    checkpoints.save({"e": 0}, 0, is_best=True)
    checkpoints.save({"e": 1, "partial": 1}, 1, is_best=False, step=3)
    checkpoints.save({"e": 1, "partial": 2}, 1, is_best=False, step=6)
    assert sorted(os.listdir(checkpoints.directory)) == ["best.pt", "epoch_0000.pt", "epoch_0001_step_000006.pt",
                                                         "last.pt"]
    checkpoints.save({"e": 1}, 1, is_best=False)
    assert sorted(os.listdir(checkpoints.directory)) == ["best.pt", "epoch_0001.pt", "last.pt"]


def test_checkpoints_honour_the_umask(in_tmp, write_yaml):
    previous = os.umask(0o022)
    try:
        assert main(["train", write_yaml(QUICK), "--run-dir", "r", "--device", "cpu"]) == 0
    finally:
        os.umask(previous)
    assert os.stat("r/checkpoints/epoch_0000.pt").st_mode & 0o777 == 0o644


def test_a_file_size_limit_while_saving_is_one_paragraph_in_the_log_too(in_tmp, write_yaml):
    config = write_yaml(QUICK)
    assert main(["train", config, "--run-dir", "r", "--device", "cpu"]) == 0  # epoch 0 saved without a limit
    limit = os.path.getsize(in_tmp / "r" / "checkpoints" / "epoch_0000.pt") // 2

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "distillkit.cli", "train", config, "--run-dir", "r", "--resume",
                             "--allow-config-change", "--set", "train.num_epochs=2", "--device", "cpu"], cwd=in_tmp,
                            env=child_env(), capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert result.returncode == 2, result.stderr
    assert "Errno 27" in result.stderr and "Traceback" not in result.stderr and "epoch_000" in result.stderr
    assert "Errno 27" in open(in_tmp / "r" / "train.log").read()
    saved = torch.load(in_tmp / "r" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["epoch"] == 0


def test_check_is_repeatable_with_a_seed(in_tmp, write_yaml, capsys):
    config = write_yaml(QUICK)

    def report():  # the report, without the timestamped log lines around it
        assert main(["check", config, "--device", "cpu", "--seed", "3"]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)]

    first = report()
    assert "check passed." in first and report() == first


def test_eval_says_which_weights_it_evaluates(in_tmp, write_yaml, capsys):
    config = write_yaml(QUICK)
    assert main(["train", config, "--run-dir", "r", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["eval", config, "--ckpt", "r/checkpoints/best.pt", "--device", "cpu"]) == 0
    assert "evaluating the student (CifarResNet) with the weights of r/checkpoints/best.pt" in capsys.readouterr().out


def test_the_preemption_message_repeats_the_set_flags(monkeypatch, capsys):
    import distillkit.cli as cli

    monkeypatch.setattr(cli, "train_from_config", lambda *a, **k: {"preempted": True, "run_dir": "runs/x"})
    assert main(["train", "c.yaml", "--set", "train.num_epochs=3", "--set", "train.optimizer.params.lr=1e-3 "]) == 0
    out = capsys.readouterr().out
    assert "distillkit train c.yaml --run-dir runs/x --resume --set train.num_epochs=3 --set " \
           "'train.optimizer.params.lr=1e-3 '" in out


def test_resume_accepts_a_config_whose_tags_build_objects(in_tmp, write_yaml, capsys):
    """An !import_call object is dumped without its memory address, so the same config compares equal."""
    text = QUICK.replace("    type: 'Digits'", "    type: 'Digits'\n    note: !import_call {key: 'builtins.object'}")
    config = write_yaml(text)
    assert main(["train", config, "--run-dir", "r", "--device", "cpu"]) == 0
    assert main(["train", config, "--run-dir", "r", "--resume", "--device", "cpu"]) == 0


def test_a_key_distillkit_does_not_read_is_warned_about_or_refused_with_strict(in_tmp, write_yaml, capsys):
    config = write_yaml(QUICK.replace("  log_freq: 5", "  log_freq: 5\n  frobnicate: 3"))
    assert main(["check", config, "--device", "cpu"]) == 0
    assert "train.frobnicate is not one distillkit reads; it is ignored" in capsys.readouterr().out
    status, err = error_of(["check", config, "--device", "cpu", "--strict"], capsys)
    assert status == 2 and "key 'train.frobnicate'" in err and "--strict" in err
