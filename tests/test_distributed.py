"""torchrun with 2 gloo processes on CPU: same weights as one process, exact evaluation, one set of outputs."""
import os
import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import child_env

CONFIG = """
imports: ['tests.dist_plugin']
datasets:
  fake:
    type: 'FakeData'
    splits:
      train:
        dataset_id: 'fake/train'
        params: {size: 48, image_size: [3, 8, 8], num_classes: 4, transform_params: [{type: 'ToTensor'}]}
      val:
        dataset_id: 'fake/val'
        params: {size: 33, image_size: [3, 8, 8], num_classes: 4, random_offset: 1000,
                 transform_params: [{type: 'ToTensor'}]}
models:
  student_model: {name: 'tiny_convnet_no_bn', params: {num_classes: 4}, ckpt: }
train:
  log_freq: 1000
  num_epochs: 2
  train_data_loader: {dataset_id: 'fake/train', random_sample: False, batch_size: BATCH, num_workers: 0}
  val_data_loader: {dataset_id: 'fake/val', random_sample: False, batch_size: 5, num_workers: 0}
  student: {wrapper: 'DistributedDataParallel'}
  optimizer: {type: 'SGD', params: {lr: 0.5, momentum: 0.9}}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {criterion: {type: 'LOSS'}, factor: 1.0}
test:
  test_data_loader: {dataset_id: 'fake/val', random_sample: False, batch_size: 4, num_workers: 0}
"""


def torchrun(nproc, *args, cwd):
    env = child_env(DISTILLKIT_DIST_TIMEOUT="60")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "distillkit.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def write_config(tmp_path, batch, loss="CrossEntropyLoss"):
    path = tmp_path / f"config_{batch}_{loss}.yaml"
    path.write_text(CONFIG.replace("BATCH", str(batch)).replace("LOSS", loss))
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process x batch 8 and two processes x batch 4, same data order, two epochs each."""
    tmp = tmp_path_factory.mktemp("dist")
    one = torchrun(1, "train", write_config(tmp, 8), "--run-dir", "one", "--device", "cpu", cwd=tmp)
    two = torchrun(2, "train", write_config(tmp, 4), "--run-dir", "two", "--device", "cpu", cwd=tmp)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    return tmp, one, two


def test_two_processes_reach_the_weights_of_one(runs):
    tmp, _, _ = runs
    single = torch.load(tmp / "one" / "checkpoints" / "last.pt", weights_only=True)["model"]
    double = torch.load(tmp / "two" / "checkpoints" / "last.pt", weights_only=True)["model"]
    initial = __import__("tests.dist_plugin", fromlist=["x"]).tiny_convnet_no_bn().state_dict()
    for key in single:
        assert not torch.allclose(single[key], initial[key])  # 12 steps moved every tensor
        # Same global batch: gradients differ only by float summation order (all-reduce vs one batch).
        torch.testing.assert_close(double[key], single[key], rtol=1e-4, atol=1e-5)


def test_exactly_one_set_of_outputs(runs):
    tmp, _, two = runs
    listing = [f for f in sorted(os.listdir(tmp / "two")) if f != "tensorboard"]  # tensorboard: when installed
    assert listing == [".lock", "checkpoints", "config.yaml", "metrics.jsonl", "results.json", "train.log"]
    assert sorted(os.listdir(tmp / "two" / "checkpoints")) == ["best.pt", "epoch_0000.pt", "epoch_0001.pt", "last.pt"]
    assert len(open(tmp / "two" / "metrics.jsonl").read().splitlines()) == 2
    assert two.stdout.count("student test top-1") == 1


def test_distributed_evaluation_counts_each_sample_once(runs):
    tmp, _, _ = runs
    config = write_config(tmp, 8)
    ckpt = str(tmp / "one" / "checkpoints" / "last.pt")
    single = torchrun(1, "eval", config, "--ckpt", ckpt, "--device", "cpu", cwd=tmp)
    double = torchrun(2, "eval", config, "--ckpt", ckpt, "--device", "cpu", cwd=tmp)
    assert single.returncode == 0 and double.returncode == 0, double.stderr[-3000:]
    pattern = r"top-1 ([\d.]+)% top-5 ([\d.]+)% on (\d+) images"
    assert re.findall(pattern, double.stdout) == re.findall(pattern, single.stdout)
    assert re.findall(pattern, single.stdout)[0][2] == "33"


def test_a_failing_rank_ends_the_job_with_its_message(tmp_path):
    result = torchrun(2, "train", write_config(tmp_path, 4, loss="FailOnRankOne"), "--run-dir", "fail",
                      "--device", "cpu", cwd=tmp_path)
    assert result.returncode != 0
    assert "deliberate failure on rank 1 at step 2" in result.stdout + result.stderr


def test_unused_parameters_error_points_at_the_config_key(tmp_path):
    text = open(write_config(tmp_path, 4)).read().replace("tiny_convnet_no_bn", "tiny_convnet_unused_head")
    (tmp_path / "unused.yaml").write_text(text)
    failed = torchrun(2, "train", "unused.yaml", "--run-dir", "a", "--device", "cpu", cwd=tmp_path)
    assert failed.returncode != 0
    assert "distillkit: error: DistributedDataParallel found trainable parameters" in failed.stderr
    assert "train.student.find_unused_parameters: true" in failed.stderr
    fixed = torchrun(2, "train", "unused.yaml", "--run-dir", "b", "--device", "cpu", "--set",
                     "train.student.find_unused_parameters=true", "--set", "train.num_epochs=1", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-3000:]


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    import signal
    import time

    config = str(tmp_path / "long.yaml")
    with open(config, "w") as handle:
        handle.write(open(write_config(tmp_path, 2)).read().replace("num_epochs: 2", "num_epochs: 50"))
    env = child_env( DISTILLKIT_DIST_TIMEOUT="60")
    job = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            "-m", "distillkit.cli", "train", config, "--run-dir", "run", "--device", "cpu"],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(tmp_path / "run" / "checkpoints" / "epoch_0001.pt") and time.time() < deadline:
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[1]), signal.SIGTERM)  # one worker only: the other must agree to stop with it
    out, err = job.communicate(timeout=120)
    assert job.returncode == 0, err[-3000:]
    assert out.count("preempted: a resumable checkpoint") == 1
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert "step_in_epoch" in saved and saved["epoch_in_progress"] >= 2


def test_a_multi_stage_run_reaches_the_weights_of_one_process(tmp_path):
    """Two stages under torchrun: the ranks meet between stages (a barrier) and end as one process does."""
    def staged(batch):
        head, rest = CONFIG.replace("BATCH", str(batch)).replace("LOSS", "CrossEntropyLoss").split("\ntrain:\n")
        test = rest[rest.index("test:"):]
        stages = f"""
train:
  log_freq: 1000
  stage1:
    num_epochs: 1
    train_data_loader: {{dataset_id: 'fake/train', random_sample: False, batch_size: {batch}, num_workers: 0}}
    val_data_loader: {{dataset_id: 'fake/val', random_sample: False, batch_size: 5, num_workers: 0}}
    student: {{wrapper: 'DistributedDataParallel'}}
    optimizer: {{type: 'SGD', params: {{lr: 0.5, momentum: 0.9}}}}
    criterion: {{type: 'GeneralizedCustomLoss', org_term: {{criterion: {{type: 'CrossEntropyLoss'}}, factor: 1.0}}}}
  stage2:
    num_epochs: 1
    optimizer: {{type: 'SGD', params: {{lr: 0.1}}}}
    criterion: {{type: 'GeneralizedCustomLoss', org_term: {{criterion: {{type: 'CrossEntropyLoss'}}, factor: 1.0}}}}
"""
        path = tmp_path / f"staged_{batch}.yaml"
        path.write_text(head + stages + test)
        return str(path)

    one = torchrun(1, "train", staged(8), "--run-dir", "one", "--device", "cpu", cwd=tmp_path)
    two = torchrun(2, "train", staged(4), "--run-dir", "two", "--device", "cpu", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    last = [torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True) for run in ("one", "two")]
    assert [state["stage"] for state in last] == [1, 1]  # both ended in stage 2
    weights = [state["model"] for state in last]
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=1e-4, atol=1e-5)
