"""torchdistill's CIFAR models under torchdistill's names: same state_dict keys and shapes as torchdistill's own
models, the same outputs with the same weights, and ``pretrained: True`` through torch.hub's cache."""
import logging
import os
import urllib.error

import pytest
import torch
from torch import nn

from distillkit.errors import ConfigError
from distillkit.models import build_model
from distillkit.models import torchdistill_weights as weights
from distillkit.registry import MODELS

# name -> input side for the forward comparison; None: keys, shapes and strict loading only, for the four
# largest (seconds a pass on CPU; their smaller siblings run the same code).  torchdistill's ResNets pool with
# AvgPool2d(8), so they need 32x32 inputs; the others pool adaptively.
CASES = {"resnet20": 32, "resnet32": 32, "resnet44": 32, "resnet56": 32, "resnet110": 32, "resnet1202": None,
         "wide_resnet40_4": 16, "wide_resnet28_10": None, "wide_resnet16_8": 8,
         "densenet_bc_k12_depth100": 16, "densenet_bc_k24_depth250": None, "densenet_bc_k40_depth190": None}
GENERIC = {"resnet": {"depth": 8}, "wide_resnet": {"depth": 10, "k": 1, "dropout_p": 0.0},
           "densenet": {"growth_rate": 6, "depth": 22, "num_init_features": 8, "bottleneck": False}}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test touches the network: a download attempt fails as it does on an offline machine."""
    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def td():
    """torchdistill's model registry (its CIFAR modules imported), the reference these tests compare against."""
    classification = pytest.importorskip("torchdistill.models.classification")
    from torchdistill.models.registry import MODEL_DICT

    return classification, MODEL_DICT


def keys_and_shapes(model: nn.Module) -> list:
    return [(key, tuple(value.shape)) for key, value in model.state_dict().items()]


def calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give every BatchNorm the running statistics of ``x`` (one train-mode pass), so that eval-mode outputs of
    a randomly initialised deep net stay of order one instead of growing with depth."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def test_registers_every_torchdistill_cifar_name(td):
    classification, registry = td
    names = set(CASES) | set(GENERIC)
    modules = {classification.resnet.__name__, classification.wide_resnet.__name__, classification.densenet.__name__}
    assert names == {name for name, fn in registry.items() if fn.__module__ in modules}
    assert all(name in MODELS for name in names)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_state_dict_and_outputs_as_torchdistill(name, td):
    torch.manual_seed(0)
    side = CASES[name]
    num_classes = 100 if name.startswith("wide") else 10
    theirs = td[1][name](num_classes=num_classes)
    ours = MODELS[name](num_classes=num_classes)
    assert keys_and_shapes(ours) == keys_and_shapes(theirs)
    if side is None:
        ours.load_state_dict(theirs.state_dict(), strict=True)
        return
    x = torch.randn(2, 3, side, side)
    calibrate(theirs, x)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    with torch.no_grad():
        expected, found = theirs(x), ours(x)
    assert found.shape == (2, num_classes) and torch.isfinite(expected).all()
    assert torch.allclose(found, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(GENERIC))
def test_generic_builders_match_torchdistill(name, td):
    params = dict(GENERIC[name], num_classes=7, pretrained=False, progress=False)
    theirs, ours = td[1][name](**params), MODELS[name](**params)
    assert keys_and_shapes(ours) == keys_and_shapes(theirs)
    x = torch.randn(2, 3, 32, 32)
    ours.load_state_dict(calibrate(theirs, x).state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), theirs(x), rtol=1e-4, atol=1e-5)


def test_wide_resnet_dropout_and_densenet_kwargs_pass_through():
    assert MODELS["wide_resnet16_8"](dropout_p=0.1).layer1[0].dropout.p == 0.1
    assert MODELS["wide_resnet40_4"]().layer2[0].dropout.p == 0.3  # torchdistill's default
    model = MODELS["densenet_bc_k12_depth100"](num_classes=100, drop_rate=0.2, bn_size=2, memory_efficient=True)
    layer = model.features.denseblock1.denselayer1
    assert layer.drop_rate == 0.2 and layer.memory_efficient and layer.conv1.out_channels == 2 * 12
    assert model.classifier.out_features == 100


def test_resnet_kwargs_as_torchdistill():
    model = MODELS["resnet56"](num_classes=100, zero_init_residual=True)
    assert model.fc.out_features == 100 and not model.layer3[-1].bn2.weight.any()
    with pytest.raises(ValueError, match="groups=1"):
        MODELS["resnet20"](groups=2)


def test_cifar_resnet_names_are_the_same_class():
    ours, td_named = MODELS["cifar_resnet20"](num_classes=10), MODELS["resnet20"](num_classes=10)
    assert type(ours) is type(td_named) and keys_and_shapes(ours) == keys_and_shapes(td_named)
    assert MODELS["cifar_resnet8"](num_classes=3, width=2, in_channels=1).conv1.weight.shape == (32, 1, 3, 3)


def test_urls_are_torchdistills(td):
    classification = td[0]
    published = {**classification.resnet.MODEL_URL_DICT, **classification.wide_resnet.MODEL_URL_DICT,
                 **classification.densenet.MODEL_URL_DICT}
    assert set(published) == weights.PUBLISHED
    assert all(weights.weights_url(key) == url for key, url in published.items())


def test_pretrained_uses_the_file_in_the_hub_cache(tmp_path, monkeypatch, td):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # what torch.hub.set_dir does, undone after
    torch.manual_seed(1)
    source = calibrate(td[1]["resnet20"](num_classes=10), torch.randn(2, 3, 32, 32))
    path = weights.cached_path("cifar10-resnet20")
    assert path == os.path.join(str(tmp_path), "hub", "checkpoints", "cifar10-resnet20.pt")
    os.makedirs(os.path.dirname(path))
    torch.save(source.state_dict(), path)
    model = build_model({"name": "resnet20", "params": {"num_classes": 10, "pretrained": True}}, "models.teacher")
    theirs = td[1]["resnet20"](num_classes=10, pretrained=True)  # torchdistill reads the same file
    for loaded in (model, theirs):
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())


def test_pretrained_offline_without_the_file_is_one_clear_paragraph(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    block = {"name": "wide_resnet40_4", "params": {"num_classes": 100, "pretrained": True}}
    with pytest.raises(ConfigError) as info:
        build_model(block, "models.teacher_model")
    text = str(info.value)
    url = weights.ROOT_URL + "/cifar100-wide_resnet40_4.pt"
    path = os.path.join(str(tmp_path), "hub", "checkpoints", "cifar100-wide_resnet40_4.pt")
    assert "models.teacher_model.params.pretrained" in text and "wide_resnet40_4" in text
    assert url in text and path in text and "Traceback" not in text and "\n" not in text


def test_unreadable_cached_file_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    path = weights.cached_path("cifar10-densenet_bc_k12_depth100")
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as handle:
        handle.write(b"not a checkpoint")
    with pytest.raises(ConfigError, match="could not be read") as info:
        MODELS["densenet_bc_k12_depth100"](pretrained=True)
    assert path in str(info.value)


def test_pretrained_without_published_weights_warns_as_torchdistill(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    with caplog.at_level(logging.WARNING, logger="distillkit.models.torchdistill_weights"):
        model = MODELS["resnet20"](num_classes=100, pretrained=True)  # torchdistill publishes CIFAR-10 only
    assert model.fc.out_features == 100 and "cifar100-resnet20" in caplog.text
    assert not os.path.exists(tmp_path / "hub")


def test_config_blocks_naming_torchdistill_models_build():
    model = build_model({"name": "resnet20", "params": {"num_classes": 10}}, "models.student_model")
    assert model.fc.out_features == 10
    wrn = build_model({"name": "wide_resnet", "params": {"depth": 40, "k": 1, "dropout_p": 0.0, "num_classes": 10,
                                                         "pretrained": False, "progress": True}},
                      "models.student_model")  # as torchdistill's sample CIFAR-10 configs write it
    assert wrn.fc.in_features == 64 and len(wrn.layer1) == 6
    with pytest.raises(ConfigError, match="models.student_model.params"):
        build_model({"name": "resnet", "params": {"depth": 21}}, "models.student_model")
    with pytest.raises(ConfigError, match="dropout_p"):
        build_model({"name": "wide_resnet16_8", "params": {"dropout": 0.1}}, "models.student_model")
