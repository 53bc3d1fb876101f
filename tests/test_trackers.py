"""Experiment trackers (train.trackers): TensorBoard, W&B (offline) and MLflow (file store) read back against
metrics.jsonl and results.json; names, options, missing libraries, rank 0 only, resume."""
import glob
import json
import os
import struct

import pytest

from distillkit.cli import main
from distillkit.engine.trackers import TRACKERS, Trackers, parse_entries, run_entries
from distillkit.engine.trackers.base import Tracker
from distillkit.errors import ConfigError
from tests.test_end_to_end import DIGITS

# 180 training images, validated and tested on themselves: two epochs in a few seconds
SMALL = DIGITS.replace("val_fraction: 0.5", "val_fraction: 0.9").replace("ckpt: 'student.pt'", "ckpt: ").replace(
    "dataset_id: *val", "dataset_id: *train").replace("log_freq: 5", "log_freq: 1")


def with_trackers(text: str) -> str:
    return SMALL.replace("  log_freq: 1\n", f"  log_freq: 1\n  trackers: {text}\n")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline and silent, MLflow on a file store: nothing reaches a network."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def wandb_records(path):
    """The protobuf records of an offline ``run-ID.wandb`` file: a LevelDB-style log (a 7-byte ``:W&B`` header,
    32 KiB blocks of records, each ``crc32, length, type``; types 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        _, length, kind = struct.unpack("<IHB", data[position:position + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # the zero padding at the end of a block
            position += left
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_run(run_dir):
    """(config, history rows by step, summary) of the one offline wandb run under ``run_dir/wandb``."""
    (path,) = glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "run-*.wandb"))
    config, history, summary = {}, {}, {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            history[row["_step"]] = row
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update})
    return config, history, summary


def test_each_tracker_holds_the_rows_config_and_results(in_tmp, write_yaml, offline):
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    uri = (in_tmp / "mlruns").as_uri()
    config = write_yaml(with_trackers(f"[tensorboard, {{name: wandb, project: kd}}, "
                                      f"{{name: mlflow, tracking_uri: '{uri}', experiment: tiny}}]"))
    assert main(["train", config, "--run-dir", "run", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in open("run/metrics.jsonl")]
    results = json.load(open("run/results.json"))
    assert [r["epoch"] for r in rows] == [0, 1]
    log = open("run/train.log").read()  # the plain progress line of each log_freq step, as a log file gets it
    assert "epoch 1 step 2/3 loss " in log and " img/s ETA " in log and " img/s in 0:" in log
    columns = [k for k in rows[0] if k != "epoch"]
    assert {"loss", "loss/org", "lr", "val_top1", "val_top5"} <= set(columns)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    for key in columns:
        history = client.get_metric_history(run.info.run_id, key.replace("/", "."))
        assert [(m.step, m.value) for m in history] == [(r["epoch"], r[key]) for r in rows], key
    assert run.data.params["train.num_epochs"] == "2" and run.data.params["train.log_freq"] == "1"
    assert run.data.params["models.student_model.name"] == "cifar_resnet8"
    assert run.data.metrics["results.student.top1"] == results["student"]["top1"]
    saved = os.path.join(run.info.artifact_uri.replace("file://", ""), "results.json")
    assert json.load(open(saved)) == results

    wandb_config, history, summary = wandb_run("run")
    assert wandb_config["train"]["num_epochs"] == 2 and wandb_config["models"]["student_model"]["name"] == \
        "cifar_resnet8"
    for row in rows:
        logged = history[row["epoch"]]
        assert {k: logged[k] for k in columns} == pytest.approx({k: row[k] for k in columns}, rel=1e-12)
    assert summary["results/student/top1"] == pytest.approx(results["student"]["top1"])
    assert json.load(open("run/trackers.json")) == {"wandb": {"id": os.path.basename(glob.glob(
        "run/wandb/offline-run-*")[0]).rsplit("-", 1)[1]}, "mlflow": {"run_id": run.info.run_id, "tracking_uri": uri}}

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator("run/tensorboard")
    events.Reload()
    for key in columns:  # TensorBoard keeps float32
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(r["epoch"], pytest.approx(r[key], rel=1e-6))
                                                                    for r in rows], key
    assert events.Scalars("results/student/top1")[0].value == pytest.approx(results["student"]["top1"], rel=1e-6)


@pytest.mark.parametrize("command", ["train", "check"])
def test_a_misspelt_tracker_is_named_with_the_nearest_names(in_tmp, write_yaml, capsys, command):
    config = write_yaml(with_trackers("[tensorboard, wandbb]"))
    assert main([command, config, "--device", "cpu"] + (["--run-dir", "run"] if command == "train" else [])) == 2
    err = capsys.readouterr().err
    assert "line 22, key 'train.trackers.1'" in err and "'wandbb'" in err and "wandb" in err.split("'wandbb'")[1]
    assert not os.path.exists("run/checkpoints") or os.listdir("run/checkpoints") == []


def test_a_missing_library_is_one_paragraph_before_training(in_tmp, write_yaml, capsys, monkeypatch):
    monkeypatch.setattr(TRACKERS["mlflow"], "library", "mlflow_is_not_installed_here")
    assert main(["train", write_yaml(with_trackers("[{name: mlflow, experiment: x}]")), "--run-dir", "run",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "train.trackers.0" in err and "pip install 'distillkit[mlflow]'" in err
    assert not os.path.exists("run/metrics.jsonl")  # nothing was trained


class Recording(Tracker):
    """A tracker that keeps what it is given (and returns a state, as wandb/mlflow return their run ids)."""

    options = ("tag",)
    calls = []

    def start(self, config, run_dir, state):
        self.calls.append(("start", config, state))
        return {"id": f"run-{len(self.calls)}"}

    def log_epoch(self, row, step):
        self.calls.append(("epoch", row, step))

    def log_results(self, results):
        raise RuntimeError("the server went away")

    def close(self, failed=False):
        self.calls.append(("close", failed))


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setitem(TRACKERS._table, "recording", Recording)
    monkeypatch.setattr(Recording, "calls", [])
    return Recording.calls


def test_only_rank_0_creates_trackers(tmp_path, recording):
    entries = parse_entries(["recording"], "train.trackers")
    assert not Trackers.open(entries, {"a": 1}, str(tmp_path), is_main=False)
    assert recording == [] and not os.path.exists(tmp_path / "trackers.json")
    group = Trackers.open(entries, {"a": 1}, str(tmp_path), is_main=True)
    group.log_epoch({"epoch": 3, "loss": 0.5}, 3)
    group.log_results({"student": {"top1": 1.0}})  # a tracker's failure is a warning, not the end of the run
    group.close()
    assert recording == [("start", {"a": 1}, None), ("epoch", {"epoch": 3, "loss": 0.5}, 3), ("close", False)]


def test_a_resumed_run_gives_each_tracker_its_saved_state(tmp_path, recording):
    entries = parse_entries([{"name": "recording", "tag": "x"}], "train.trackers")
    Trackers.open(entries, {}, str(tmp_path), is_main=True).close()
    assert json.load(open(tmp_path / "trackers.json")) == {"recording": {"id": "run-1"}}
    Trackers.open(entries, {}, str(tmp_path), is_main=True, resuming=True).close(failed=True)
    assert recording[2] == ("start", {}, {"id": "run-1"}) and recording[3] == ("close", True)
    Trackers.open(entries, {}, str(tmp_path), is_main=True, resuming=False)  # a fresh run: a new tracker run
    assert recording[4] == ("start", {}, None)


def test_default_is_tensorboard_when_installed_and_an_empty_list_is_none(tmp_path):
    assert not Trackers.open([], {}, str(tmp_path), is_main=True)
    default = Trackers.open(None, {}, str(tmp_path), is_main=True)
    expected = ["TensorBoardTracker"] if TRACKERS["tensorboard"].installed() else []
    assert [type(t).__name__ for t in default.trackers] == expected
    default.close()


@pytest.mark.parametrize("value, words", [
    ([{"name": "mlflow", "trackin_uri": "x"}], ["train.trackers.0.trackin_uri", "tracking_uri"]),
    (["wandb", "wandb"], ["train.trackers.1", "listed twice"]),
    ([{"project": "x"}], ["train.trackers.0", "{name: NAME"]),
])
def test_tracker_entries_are_checked(value, words):
    with pytest.raises(ConfigError) as caught:
        parse_entries(value, "train.trackers")
    for word in words:
        assert word in str(caught.value)


def test_stages_share_one_list_of_trackers():
    class Stage:
        def __init__(self, key_path, trackers):
            self.key_path, self.trackers = key_path, trackers

    same = run_entries([Stage("train.stage1", ["wandb"]), Stage("train.stage2", ["wandb"])])
    assert same == [("wandb", {}, "train.trackers.0")]  # written once, beside the stages
    with pytest.raises(ConfigError, match="train.stage2.trackers"):
        run_entries([Stage("train.stage1", ["wandb"]), Stage("train.stage2", ["mlflow"])])
    assert run_entries([Stage("train", ["mlflow"])]) == [("mlflow", {}, "train.trackers.0")]


def test_mlflow_resume_continues_one_run_and_tagged_keys_become_params(tmp_path, offline):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    entries = parse_entries([{"name": "mlflow", "tracking_uri": uri}], "train.trackers")
    config = {"train": {"lr": 0.1}, "datasets": {"path": {"!join": ["a", "b"]}}}
    first = Trackers.open(entries, config, str(tmp_path), is_main=True)
    first.log_epoch({"epoch": 0, "loss": 2.0, "loss/kd": 1.5}, 0)
    first.close(failed=True)  # a crash after epoch 0
    again = Trackers.open(entries, config, str(tmp_path), is_main=True, resuming=True)
    again.log_epoch({"epoch": 1, "loss": 1.0, "loss/kd": 0.5}, 1)
    again.close()
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("distillkit").experiment_id])
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss.kd")] == [(0, 1.5), (1, 0.5)]
    assert run.data.params == {"train.lr": "0.1", "datasets.path._join": '["a", "b"]'}
    assert run.info.status == "FINISHED" and run.info.run_name == os.path.basename(tmp_path)
