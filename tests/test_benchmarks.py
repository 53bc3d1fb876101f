"""The benchmark jobs compute what they claim: distillkit's step equals the hand-written loop's.

The scripts run as processes with tiny images and two steps (timings are not looked at here;
speed is checked by running benchmarks/compare.py, never by a unit test).
"""
import json
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--device", "cpu", "--batch-size", "4", "--image-size", "32", "--warmup", "1", "--steps", "1"]


TORCHDISTILL = os.path.join(ROOT, "benchmarks", ".torchdistill")  # where compare.py installs it


def bench(script, *arguments):
    completed = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *TINY, *arguments],
                               cwd=ROOT, capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TORCHDISTILL])))
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = [x for x in completed.stdout.splitlines() if x.startswith("BENCH_RESULT ")][-1]
    return json.loads(line[len("BENCH_RESULT "):])


def test_kd_job_distillkit_equals_hand_written_loop():
    hand = bench("hand_kd.py")
    defaults = bench("distillkit_job.py", "--settings", "defaults")
    assert defaults["final_loss"] == pytest.approx(hand["final_loss"], rel=1e-5)
    assert hand["steps"] == defaults["steps"] == 1 and hand["peak_rss_mib"] > 0


def test_tat_job_distillkit_equals_hand_written_loop():
    hand = bench("hand_tat.py")
    defaults = bench("distillkit_job.py", "--settings", "defaults", "--config",
                     "configs/ilsvrc2012/tat/resnet18_from_resnet34_attn.yaml")
    assert defaults["final_loss"] == pytest.approx(hand["final_loss"], rel=1e-4)


def test_kd_job_torchdistill_equals_hand_written_loop():
    installed = importlib.util.find_spec("torchdistill") is not None  # the test extra installs it
    if not installed and not os.path.isdir(os.path.join(TORCHDISTILL, "torchdistill")):
        pytest.skip("torchdistill is not installed (pip install -e '.[test]', or python benchmarks/compare.py kd)")
    assert bench("torchdistill_kd.py")["final_loss"] == pytest.approx(bench("hand_kd.py")["final_loss"], rel=1e-5)


def test_seg_job_distillkit_equals_hand_written_loop():
    """The segmentation job: the Trainer on the shapes TaT config equals the hand-written loop (same data, loss)."""
    hand = bench("hand_seg.py")
    defaults = bench("distillkit_job.py", "--settings", "defaults", "--own-data", "--config",
                     "configs/segmentation/shapes/tat_tiny_fcn8_from_tiny_fcn16.yaml")
    assert defaults["final_loss"] == pytest.approx(hand["final_loss"], rel=1e-5)
