"""distillkit check / modules / export / plot, entry-point plugins, and the guided run-time errors."""
import os

import pytest
import torch

from distillkit import plugins
from distillkit.cli import main
from distillkit.registry import LOSSES, MODELS
from tests.test_end_to_end import DIGITS

HOOKED = DIGITS.replace("""models:
  student_model:""", """models:
  teacher_model: {name: 'cifar_resnet14', params: {num_classes: 10}}
  student_model:""").replace("""  optimizer:""", """  teacher: {forward_hook: {output: ['fc', 'layer2']}}
  student:
    special:
      type: 'AttnEmbed'
      params: {embedings: {query: {io: 'output', path: 'model.layer3', in_channels: 64, out_channels: 64}}}
    forward_hook: {output: ['model.fc', 'model.layer3', 'embed_dict.query']}
  optimizer:""").replace("""    org_term: {criterion: {type: 'CrossEntropyLoss', params: {}}, factor: 1.0}""",
                         """    org_term: {criterion: {type: 'CrossEntropyLoss', params: {}}, factor: 1.0}
    sub_terms:
      logits:
        criterion:
          type: 'MSELoss'
          params: {input: {module_path: 'model.fc'}, target: {is_from_teacher: True, module_path: 'fc'}}
        factor: 0.5""").replace("ckpt: 'student.pt'", "ckpt: ")


def test_check_runs_one_step_and_reports_tensors_and_terms(in_tmp, write_yaml, capsys):
    assert main(["check", write_yaml(HOOKED), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "teacher  fc                output  (64, 10)" in out
    assert "student  embed_dict.query  output  (64, 64, 2, 2)" in out and "(64, 32, 4, 4)" in out
    values = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()
              if line.split() and line.split()[0] in ("org", "logits", "total")}
    assert values["total"] == pytest.approx(values["org"] + values["logits"], rel=1e-4)
    assert values["org"] == pytest.approx(2.3, abs=0.5)  # cross-entropy of an untrained 10-way model is ~ln 10
    assert sorted(os.listdir(in_tmp)) == ["config.yaml"]  # no run directory, no checkpoint


@pytest.mark.parametrize("edit, words", [
    (("module_path: 'fc'}", "module_path: 'layer2'}"),
     ["'model.fc', shape (64, 10)", "'layer2', shape (64, 32, 4, 4)"]),
    (("forward_hook: {output: ['fc', 'layer2']}", "forward_hook: {output: ['layer2']}"),
     ["teacher's output of 'fc'", "train.teacher.forward_hook.output"]),
    (("'model.layer3', 'embed_dict.query'", "'model.layer33', 'embed_dict.query'"),
     ["no module at path 'model.layer33'", "'model.layer3'", "train.student.forward_hook.output.1"]),
])
def test_check_guided_errors(in_tmp, write_yaml, capsys, edit, words):
    assert main(["check", write_yaml(HOOKED.replace(*edit)), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("distillkit: error:") and len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err


def test_modules_lists_paths_with_output_shapes(capsys):
    assert main(["modules", "cifar_resnet8", "--input-size", "3", "16", "16", "--param", "num_classes=7"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "(1, 64, 4, 4)" in rows["layer3"] and "(1, 32, 8, 8)" in rows["layer2.0.conv1"]
    assert "(1, 7)" in rows["fc"] and "Linear" in rows["fc"]


def test_export_gives_the_student_alone_with_the_same_outputs(in_tmp, write_yaml, capsys):
    config = write_yaml(HOOKED.replace("num_epochs: 2", "num_epochs: 1"))
    assert main(["train", config, "--run-dir", "run", "--device", "cpu"]) == 0
    assert main(["export", config, "--ckpt", "run/checkpoints/best.pt", "--out", "student_only.pt"]) == 0
    exported = torch.load("student_only.pt", weights_only=True)["model"]
    assert not any("embed_dict" in k for k in exported)
    fresh = MODELS["cifar_resnet8"](num_classes=10)
    fresh.load_state_dict(exported)
    fresh.eval()
    from distillkit.config import load_config
    from distillkit.experiment import build_experiment

    trained = build_experiment(load_config(config), for_training=False).student
    trained.load_state_dict(torch.load("run/checkpoints/best.pt", weights_only=True)["student_side"])
    trained.eval()
    images = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(fresh(images), trained(images)[0])


def test_plot_writes_loss_and_accuracy_pngs(in_tmp, write_yaml, capsys):
    pytest.importorskip("matplotlib")
    assert main(["train", write_yaml(DIGITS), "--run-dir", "run", "--device", "cpu"]) == 0
    assert main(["plot", "run"]) == 0
    for name in ("loss.png", "loss_org.png", "val_top1.png", "val_top5.png"):
        assert open(os.path.join("run", name), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_tensorboard_scalars_when_installed(in_tmp, write_yaml):
    pytest.importorskip("tensorboard")
    assert main(["train", write_yaml(DIGITS), "--run-dir", "run", "--device", "cpu"]) == 0
    assert any(f.startswith("events.out.tfevents") for f in os.listdir("run/tensorboard"))


def test_missing_checkpoint_is_named(in_tmp, write_yaml, capsys):
    assert main(["eval", write_yaml(DIGITS), "--ckpt", "nope.pt", "--device", "cpu"]) == 2
    assert "'nope.pt' does not exist" in capsys.readouterr().err


def test_entry_point_plugins_load_automatically(tmp_path, monkeypatch):
    dist_info = tmp_path / "fake_distillkit_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-distillkit-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[distillkit.plugins]\nfake = fake_entry_point_losses\n")
    (tmp_path / "fake_entry_point_losses.py").write_text(
        "import torch\nfrom distillkit import register_loss\n\n@register_loss\nclass EntryPointLoss(torch.nn.Module):\n"
        "    def forward(self, s, t, y):\n        return s.sum()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_loaded_entry_points", False)
    plugins.load_entry_point_plugins()
    assert "EntryPointLoss" in LOSSES


def test_example_plugin_config_builds(monkeypatch):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.chdir(repo)
    from distillkit.config import load_config
    from distillkit.experiment import build_experiment

    experiment = build_experiment(load_config("examples/plugins/logit_mse_digits.yaml"), for_training=False)
    assert type(experiment.criterion.org_criterion).__name__ == "LogitMSE"
    assert len(open("examples/plugins/logit_mse.py").read().strip().splitlines()) <= 15

