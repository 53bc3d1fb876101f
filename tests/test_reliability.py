"""Exact resume after SIGKILL, checkpoints that survive a kill mid-save, and non-finite losses.

A test that signals or kills a run waits for an observable state of that run (a "epoch E step S/T" line on
its stdout, with ``train.log_freq: 1``; a line the saver prints), never for an amount of time, so it holds on
an idle machine and on a loaded one alike."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from distillkit.cli import main
from distillkit.engine.checkpoint import RunCheckpoints
from tests.conftest import REPO, child_env, start_cli
from tests.test_end_to_end import DIGITS

AUGMENTED = DIGITS.replace("transform_params: [{type: 'ToTensor', params: }]",
                           "transform_params: [{type: 'RandomAffine', params: {degrees: 15}}, {type: 'ToTensor'}]") \
    .replace("num_epochs: 2", "num_epochs: 4").replace("ckpt: 'student.pt'", "ckpt: ") \
    .replace("log_freq: 5", "log_freq: 1")  # a line per step: the state the tests wait for


class Watched:
    """A child process whose stdout and stderr are read line by line as they come (so no pipe fills up)."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.lines = {"out": [], "err": []}
        self.open = {"out": True, "err": True}
        self.changed = threading.Condition()
        self.readers = [threading.Thread(target=self._read, args=(stream, name), daemon=True)
                        for stream, name in ((process.stdout, "out"), (process.stderr, "err"))]
        for reader in self.readers:
            reader.start()

    def _read(self, stream, name):
        for line in stream:
            with self.changed:
                self.lines[name].append(line)
                self.changed.notify_all()
        with self.changed:
            self.open[name] = False
            self.changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 300) -> str:
        """The first stdout line matching ``pattern``, once the child printed it (fails if it exits first)."""
        regex, seen, deadline = re.compile(pattern), 0, time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines["out"][seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines["out"])
                remaining = deadline - time.monotonic()
                assert self.open["out"] and remaining > 0, (
                    f"no line matching {pattern!r} before the run "
                    f"{'ended' if not self.open['out'] else 'timed out'}:\n" + "".join(self.lines["out"][-20:])
                    + "".join(self.lines["err"])[-3000:])
                self.changed.wait(remaining)

    def signal(self, signum):
        assert self.process.poll() is None, "the run ended before it could be signalled"
        self.process.send_signal(signum)

    def finish(self, timeout: float = 300):
        """``(exit status, stdout, stderr)`` once the child has exited."""
        code = self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=60)
        return code, "".join(self.lines["out"]), "".join(self.lines["err"])


def start_pair(config, name, cwd, pattern):
    """An uninterrupted run 'straight' and a run ``name`` started beside it; returns once ``name`` printed a
    line matching ``pattern``."""
    straight = Watched(start_cli("train", config, "--run-dir", "straight", "--device", "cpu", cwd=cwd))
    victim = Watched(start_cli("train", config, "--run-dir", name, "--device", "cpu", cwd=cwd))
    victim.wait_for_line(pattern)
    return straight, victim


def test_sigkill_then_resume_is_bitwise_identical(in_tmp, write_yaml):
    config = write_yaml(AUGMENTED)
    # Killed in its first step of epoch 2 (15 steps an epoch): epoch_0001.pt is its last checkpoint.
    straight, killed = start_pair(config, "killed", in_tmp, r"epoch 2 step 1/\d+ ")
    killed.signal(signal.SIGKILL)
    assert killed.finish()[0] == -signal.SIGKILL
    assert straight.finish()[0] == 0
    resumed = start_cli("train", config, "--run-dir", "killed", "--resume", "--device", "cpu", cwd=in_tmp)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert "resumed from" in out
    a = torch.load(in_tmp / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(in_tmp / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3 and a["global_step"] == b["global_step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    rows = [json.loads(line) for line in open(in_tmp / "killed" / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    straight_rows = [json.loads(line) for line in open(in_tmp / "straight" / "metrics.jsonl")]
    assert [r["loss"] for r in rows] == [r["loss"] for r in straight_rows]


SAVER = """
import sys, torch
from distillkit.engine.checkpoint import RunCheckpoints
checkpoints = RunCheckpoints(sys.argv[1], keep_last=2)
for epoch in range(10_000):
    checkpoints.save({"epoch": epoch, "weights": torch.full((8_000_000,), float(epoch))}, epoch, is_best=True)
    print(epoch, flush=True)
"""


def test_sigkill_during_saves_leaves_loadable_checkpoints(tmp_path):
    env = child_env()
    for delay in (0.05, 0.23, 0.41):
        run_dir = tmp_path / f"run{delay}"
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(run_dir)], env=env, stdout=subprocess.PIPE,
                                 text=True)
        assert saver.stdout.readline() == "0\n"  # the state waited for: one checkpoint is complete
        # Then kill it wherever it happens to be (often in the middle of a 32 MB write): the delay only varies
        # the point of the kill; what is asserted holds at any point, and the saver never ends by itself.
        time.sleep(delay)
        saver.send_signal(signal.SIGKILL)
        assert saver.wait() == -signal.SIGKILL
        for name in ("last.pt", "best.pt"):
            state = torch.load(run_dir / "checkpoints" / name, weights_only=True)
            assert torch.equal(state["weights"], torch.full((8_000_000,), float(state["epoch"])))


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpoints = RunCheckpoints(str(tmp_path), keep_last=1)
    checkpoints.save({"epoch": 0}, 0, is_best=True)

    def broken_save(obj, stream):
        stream.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        checkpoints.save({"epoch": 1}, 1, is_best=True)
    monkeypatch.undo()
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True) == {"epoch": 0}
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["best.pt", "epoch_0000.pt", "last.pt"]


def test_keep_last_n_plus_best(tmp_path):
    checkpoints = RunCheckpoints(str(tmp_path), keep_last=2)
    for epoch in range(5):
        checkpoints.save({"epoch": epoch}, epoch, is_best=epoch == 1)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["best.pt", "epoch_0003.pt", "epoch_0004.pt", "last.pt"]
    assert torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True) == {"epoch": 1}


NAN = "imports: ['tests.dist_plugin']\n" + DIGITS \
    .replace("type: 'CrossEntropyLoss', params: {}", "type: 'NanOnThirdCall'") \
    .replace("batch_size: 64", "batch_size: 300").replace("ckpt: 'student.pt'", "ckpt: ")


def test_nonfinite_loss_stops_naming_term_and_step(in_tmp, write_yaml, capsys, monkeypatch):
    monkeypatch.syspath_prepend(REPO)
    assert main(["train", write_yaml(NAN), "--run-dir", "run", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "non-finite between global steps 1 and 3: org = nan" in err  # checked at the end of epoch 0
    assert not os.path.exists("run/checkpoints/last.pt")  # nothing half-good was saved


def test_skip_nonfinite_skips_and_logs(in_tmp, write_yaml, capsys, monkeypatch):
    monkeypatch.syspath_prepend(REPO)
    assert main(["train", write_yaml(NAN), "--run-dir", "run", "--device", "cpu",
                 "--set", "train.skip_nonfinite=1"]) == 0
    out = capsys.readouterr().out
    assert "skipping step: the loss became non-finite at global step 3: org = nan" in out
    state = torch.load("run/checkpoints/last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert state["skipped_steps"] == 1 and state["global_step"] == 2 * 3 - 1  # 2 epochs x 3 batches (899 / 300)


SLOW = AUGMENTED.replace("batch_size: 64", "batch_size: 16").replace("num_epochs: 4", "num_epochs: 2")


def test_sigterm_saves_mid_epoch_and_resume_is_bitwise_identical(in_tmp, write_yaml):
    config = write_yaml(SLOW)
    # Inside epoch 1 (57 batches of 16): its first step is done, 56 are left when the signal arrives.
    straight, stopped = start_pair(config, "stopped", in_tmp, r"epoch 1 step 1/57 ")
    stopped.signal(signal.SIGTERM)
    code, out, err = stopped.finish(timeout=120)
    assert code == 0, err[-3000:]
    assert "preempted: a resumable checkpoint" in out
    saved = torch.load(in_tmp / "stopped" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["epoch_in_progress"] == 1 and 0 < saved["step_in_epoch"] < 57
    resumed = start_cli("train", config, "--run-dir", "stopped", "--resume", "--device", "cpu", cwd=in_tmp)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert straight.finish()[0] == 0
    a = torch.load(in_tmp / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(in_tmp / "stopped" / "checkpoints" / "last.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 2 * 57
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    rows = [json.loads(line) for line in open(in_tmp / "stopped" / "metrics.jsonl")]
    straight_rows = [json.loads(line) for line in open(in_tmp / "straight" / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[1]["loss"] == pytest.approx(straight_rows[1]["loss"], rel=1e-12)
