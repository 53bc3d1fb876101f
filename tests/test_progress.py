"""The progress bar: drawn for a terminal only (or DISTILLKIT_PROGRESS), rate-limited, with loss, img/s and ETA."""
import io

import pytest
import torch

from distillkit.engine.progress import ProgressBar, clock_text


class Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


class Clock:
    """Seconds set by the test (no waiting on wall time)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def no_forcing(monkeypatch):
    monkeypatch.delenv("DISTILLKIT_PROGRESS", raising=False)


def drawn_lines(stream):
    return [line.rstrip() for line in stream.getvalue().replace("\n", "\r").split("\r") if line.strip()]


def test_a_terminal_gets_epoch_steps_loss_rate_and_eta():
    clock, stream = Clock(), Stream(tty=True)
    bar = ProgressBar(4, "epoch 3", stream=stream, clock=clock)
    clock.now = 4.0  # 2 steps, 32 images, loss sum 16 in 4 s: 8 img/s, 2 s a step, 2 steps left
    bar.update(2, 32, torch.tensor(16.0))
    clock.now = 8.0
    bar.update(4, 64, torch.tensor(24.0))
    bar.close()
    assert drawn_lines(stream) == ["epoch 3 [" + "#" * 12 + "." * 12 + "] 2/4 loss 0.5000 8 img/s ETA 0:04",
                                   "epoch 3 [" + "#" * 24 + "] 4/4 loss 0.3750 8 img/s in 0:08"]
    assert stream.getvalue().endswith("\n")


def test_redraws_are_rate_limited_but_the_last_step_is_always_drawn():
    clock, stream = Clock(), Stream(tty=True)
    bar = ProgressBar(10, "epoch 0", stream=stream, interval=0.5, clock=clock)
    for step, now in ((1, 1.0), (2, 1.2), (3, 1.4), (4, 1.6), (10, 1.7)):
        clock.now = now
        bar.update(step, 8 * step, 1.0 * step)
    assert [line.split("] ")[1].split()[0] for line in drawn_lines(stream)] == ["1/10", "4/10", "10/10"]


@pytest.mark.parametrize("tty, force, drawn", [(False, None, False), (True, None, True), (False, "1", True),
                                               (True, "0", False)])
def test_drawn_only_for_a_terminal_unless_forced(monkeypatch, tty, force, drawn):
    if force is not None:
        monkeypatch.setenv("DISTILLKIT_PROGRESS", force)
    stream = Stream(tty)
    bar = ProgressBar(4, "epoch 0", stream=stream, clock=Clock())
    bar.update(4, 32, 8.0)
    bar.close()
    assert bool(stream.getvalue()) is drawn
    rank1 = Stream(tty)
    ProgressBar(4, "epoch 0", enabled=False, stream=rank1, clock=Clock()).update(4, 32, 8.0)
    assert rank1.getvalue() == ""  # other ranks never draw


def test_after_a_mid_epoch_resume_rate_and_eta_count_from_the_resumed_step():
    clock = Clock()
    bar = ProgressBar(6, "epoch 1", first=2, seen=32, clock=clock, stream=Stream(False))
    clock.now = 2.0  # steps 3 and 4 (32 images) in 2 s; 2 steps left
    assert bar.status(4, 64, 32.0) == "4/6 loss 0.5000 16 img/s ETA 0:02"


def test_clear_blanks_the_line_and_the_next_update_redraws_it():
    clock, stream = Clock(), Stream(tty=True)
    bar = ProgressBar(10, "epoch 0", stream=stream, interval=5.0, clock=clock)
    bar.update(1, 8, 8.0)
    width = len(stream.getvalue()) - 1
    bar.clear()
    assert stream.getvalue().endswith("\r" + " " * width + "\r")
    clock.now = 0.1  # within the interval, drawn again after a clear
    bar.update(2, 16, 8.0)
    assert drawn_lines(stream)[-1].startswith("epoch 0 [") and "2/10" in drawn_lines(stream)[-1]


def test_clock_text():
    assert [clock_text(s) for s in (0, 59.4, 61, 3600 + 62)] == ["0:00", "0:59", "1:01", "1:01:02"]
