"""Feature-map families (AT, FSP, FT, DAB, PAD, knowledge review, regularization, FitNet's regressor):
values and gradients against torchdistill 1.1.5 in float64, config paths, and refused params."""
import copy

import pytest
import torch
from torch import nn
from torchdistill.losses import mid_level as td_losses
from torchdistill.models import util as td_util
from torchdistill.models import wrapper as td_wrapper

from distillkit.errors import ConfigError
from distillkit.hooks import HookCapture
from distillkit.losses import ShapeMismatchError, UnhookedPathError, build_criterion
from distillkit.losses.attention import ATLoss, FSPLoss
from distillkit.losses.dab import AltActTransferLoss
from distillkit.losses.factor_transfer import FTLoss
from distillkit.losses.functional import attention_map
from distillkit.losses.pad import PADL2Loss
from distillkit.losses.regularization import RegularizationLoss
from distillkit.losses.review import HierarchicalContextLoss
from distillkit.model_side import ModelSide
from distillkit.models.special.dab import Connector4DAB
from distillkit.models.special.empty import EmptyModule
from distillkit.models.special.factor_transfer import (
    Paraphraser4FactorTransfer,
    Student4FactorTransfer,
    Teacher4FactorTransfer,
    Translator4FactorTransfer,
)
from distillkit.models.special.pad import VarianceBranch4PAD
from distillkit.models.special.review import AttentionBasedFusion, Student4KnowledgeReview

CPU = torch.device("cpu")
TD_DEVICE = dict(device=CPU, device_ids=None, distributed=False)


def close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def leaves(*shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=generator, dtype=torch.float64).requires_grad_() for s in shapes]


def compare_loss(ours, theirs, student_io, teacher_io, tensors):
    """Same value and the same gradient on every input tensor."""
    ours_value = ours(student_io, teacher_io, None)
    ours_grads = torch.autograd.grad(ours_value, tensors)
    their_value = theirs(student_io, teacher_io, None)
    their_grads = torch.autograd.grad(their_value, tensors)
    close(ours_value, their_value)
    for mine, theirs_grad in zip(ours_grads, their_grads):
        close(mine, theirs_grad)
    return ours_value


def io(**tensors):
    return {path.replace("__", "."): {"output": t} for path, t in tensors.items()}


# ---------------------------------------------------------------- losses

PAIRS = {"p1": {"student": {"io": "output", "path": "s1"}, "teacher": {"io": "output", "path": "t1"}, "weight": 1},
         "p2": {"student": {"io": "output", "path": "s2"}, "teacher": {"io": "output", "path": "t2"}, "weight": 0.5}}


@pytest.mark.parametrize("mode", ["code", "paper"])
def test_at_loss_equals_torchdistill(mode):
    s1, t1, s2, t2 = leaves((3, 4, 6, 6), (3, 8, 6, 6), (3, 5, 3, 3), (3, 7, 3, 3))
    compare_loss(ATLoss(PAIRS, mode=mode), td_losses.ATLoss(PAIRS, mode=mode), io(s1=s1, s2=s2), io(t1=t1, t2=t2),
                 [s1, t1, s2, t2])


def test_attention_map_modes_by_hand():
    (x,) = leaves((2, 3, 2, 2))
    for reduction, pooled in (("mean", x.pow(2).mean(1)), ("sum", x.pow(2).sum(1))):
        flat = pooled.flatten(1)
        close(attention_map(x, reduction), flat / flat.norm(dim=1, keepdim=True))


def test_fsp_loss_equals_torchdistill_with_pooling():
    pairs = {"a": {"student_first": {"io": "input", "path": "s1"}, "student_second": {"io": "output", "path": "s1"},
                   "teacher_first": {"io": "input", "path": "t1"}, "teacher_second": {"io": "output", "path": "t1"},
                   "weight": 2},
             "b": {"student_first": {"io": "output", "path": "s2"}, "student_second": {"io": "output", "path": "s3"},
                   "teacher_first": {"io": "output", "path": "t2"}, "teacher_second": {"io": "output", "path": "t3"}}}
    si, so, ti, to, s2, s3, t2, t3 = leaves((2, 3, 8, 8), (2, 5, 4, 4), (2, 3, 8, 8), (2, 5, 4, 4),
                                            (2, 4, 5, 5), (2, 6, 7, 7), (2, 4, 5, 5), (2, 6, 7, 7))
    student = {"s1": {"input": si, "output": so}, "s2": {"output": s2}, "s3": {"output": s3}}
    teacher = {"t1": {"input": ti, "output": to}, "t2": {"output": t2}, "t3": {"output": t3}}
    compare_loss(FSPLoss(pairs), td_losses.FSPLoss(pairs), student, teacher, [si, so, ti, to, s2, s3, t2, t3])


@pytest.mark.parametrize("p, reduction", [(1, "mean"), (1, "sum"), (2, "mean"), (2, "sum")])
def test_ft_loss_equals_torchdistill(p, reduction):
    factor_t, factor_s = leaves((3, 4, 2, 2), (3, 4, 2, 2))
    compare_loss(FTLoss(p=p, reduction=reduction), td_losses.FTLoss(p=p, reduction=reduction),
                 io(translator=factor_s), io(paraphraser=factor_t), [factor_s, factor_t])


@pytest.mark.parametrize("reduction, margin", [("mean", 1.0), ("sum", 0.5)])
def test_dab_loss_equals_torchdistill(reduction, margin):
    s1, t1, s2, t2 = leaves((3, 4, 5, 5), (3, 4, 5, 5), (3, 2, 2, 2), (3, 2, 2, 2), seed=1)
    compare_loss(AltActTransferLoss(PAIRS, margin, reduction), td_losses.AltActTransferLoss(PAIRS, margin, reduction),
                 io(s1=s1, s2=s2), io(t1=t1, t2=t2), [s1, s2])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_pad_l2_loss_equals_torchdistill(reduction):
    student, teacher, log_var = leaves((4, 6, 1, 1), (4, 6, 1, 1), (4, 6))
    params = dict(student_embed_module_path="student_model.avgpool", teacher_embed_module_path="avgpool",
                  eps=1e-6, reduction=reduction)
    compare_loss(PADL2Loss(**params), td_losses.PADL2Loss(**params),
                 io(student_model__avgpool=student, var_estimator=log_var), io(avgpool=teacher),
                 [student, teacher, log_var])


@pytest.mark.parametrize("height, sizes", [(8, [4, 2, 1]), (2, [4, 2, 1]), (4, None)])
def test_hierarchical_context_loss_equals_torchdistill(height, sizes):
    fused, residual, teacher = leaves((2, 3, height, height), (2, 3, height, height), (2, 3, height, height))
    params = dict(student_module_path="abf_modules.0", student_module_io="output", teacher_module_path="layer1",
                  teacher_module_io="output", reduction="mean", output_sizes=sizes)
    compare_loss(HierarchicalContextLoss(**params), td_losses.HierarchicalContextLoss(**params),
                 {"abf_modules.0": {"output": (fused, residual)}}, io(layer1=teacher), [fused, teacher])


@pytest.mark.parametrize("p, from_teacher", [(1, False), (2, True)])
def test_regularization_loss_equals_torchdistill(p, from_teacher):
    (z,) = leaves((3, 4, 2))
    params = dict(module_path="translator", io_type="output", is_from_teacher=from_teacher, p=p)
    student, teacher = (io(), io(translator=z)) if from_teacher else (io(translator=z), io())
    compare_loss(RegularizationLoss(**params), td_losses.RegularizationLoss(**params), student, teacher, [z])


def test_pair_factor_of_0x_configs_reads_like_weight():
    s1, t1 = leaves((2, 3, 4, 4), (2, 3, 4, 4))
    pairs_1x = {"p": {"student": {"io": "output", "path": "s1"}, "teacher": {"io": "output", "path": "t1"},
                      "weight": 3}}
    pairs_0x = {"p": {"student": {"io": "output", "path": "s1"}, "teacher": {"io": "output", "path": "t1"},
                      "factor": 3}}
    close(ATLoss(pairs_0x)(io(s1=s1), io(t1=t1)), ATLoss(pairs_1x)(io(s1=s1), io(t1=t1)))
    with pytest.raises(ConfigError, match="both weight"):
        ATLoss({"p": dict(pairs_1x["p"], factor=2)})


def test_losses_explain_shapes_and_missing_hooks():
    s1, t1 = leaves((2, 3, 4, 4), (2, 3, 2, 2))
    pairs = {"p1": PAIRS["p1"]}
    with pytest.raises(ShapeMismatchError, match="same batch and spatial size"):
        ATLoss(pairs)(io(s1=s1), io(t1=t1))
    with pytest.raises(ShapeMismatchError, match="out_channels is 3"):
        AltActTransferLoss(pairs, 1.0, "mean")(io(s1=s1), io(t1=leaves((2, 3, 5, 5))[0]))
    with pytest.raises(UnhookedPathError, match="train.teacher.forward_hook.output"):
        ATLoss(pairs)(io(s1=s1), io())
    with pytest.raises(ShapeMismatchError, match="AttentionBasedFusion"):
        HierarchicalContextLoss("abf", "output", "t1", "output")(io(abf=s1), io(t1=s1))
    with pytest.raises(ShapeMismatchError, match="num_output_channels"):
        FTLoss()(io(translator=s1), io(paraphraser=t1))
    with pytest.raises(ConfigError, match="mode must be"):
        ATLoss(pairs, mode="papers")
    with pytest.raises(ConfigError, match="reduction must be"):
        AltActTransferLoss(pairs, 1.0, "avg")
    with pytest.raises(ConfigError, match="lacks teacher"):
        ATLoss({"p": {"student": {"io": "output", "path": "s1"}}})


TERMS = {
    "ATLoss": {"at_pairs": {"p1": PAIRS["p1"]}, "mode": "code"},
    "FSPLoss": {"fsp_pairs": {"p": {"student_first": {"io": "output", "path": "s1"},
                                    "student_second": {"io": "output", "path": "s1"},
                                    "teacher_first": {"io": "output", "path": "t1"},
                                    "teacher_second": {"io": "output", "path": "t1"}}}},
    "FTLoss": {"p": 1, "reduction": "mean", "paraphraser_path": "t1", "translator_path": "s1"},
    "AltActTransferLoss": {"feature_pairs": {"p1": PAIRS["p1"]}, "margin": 1.0, "reduction": "mean"},
    "PADL2Loss": {"student_embed_module_path": "s1", "teacher_embed_module_path": "t1", "module_path": "v"},
    "RegularizationLoss": {"module_path": "s1", "p": 1},
}


@pytest.mark.parametrize("name", sorted(TERMS))
def test_each_loss_builds_through_the_config_path_and_refuses_a_misspelt_param(name):
    s1, t1, log_var = leaves((2, 3, 4, 4), (2, 3, 4, 4), (2, 48))
    criterion = build_criterion({"type": "GeneralizedCustomLoss",
                                 "sub_terms": {"x": {"criterion": {"type": name, "params": TERMS[name]},
                                                     "factor": 2.0}}})
    student, teacher = io(s1=s1, v=log_var), io(t1=t1)
    total, terms = criterion(None, None, student, teacher, None)
    single = build_criterion({"type": "GeneralizedCustomLoss",
                              "sub_terms": {"x": {"criterion": {"type": name, "params": TERMS[name]}}}})
    once = single(None, None, student, teacher, None)[0]
    assert torch.isfinite(total) and total.item() == pytest.approx(2 * once.item())
    misspelt = {"type": name, "params": dict(TERMS[name], reductoin="sum")}
    with pytest.raises(ConfigError, match="rejected these params") as error:
        build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"x": {"criterion": misspelt}}})
    assert "train.criterion.sub_terms.x.criterion.params" in str(error.value)


@pytest.mark.parametrize("name, params, key", [
    ("ATLoss", {"at_pairs": {"p1": PAIRS["p1"]}, "mode": "papers"}, "params.mode"),
    ("AltActTransferLoss", {"feature_pairs": {"p1": PAIRS["p1"]}, "margin": 1.0, "reduction": "avg"},
     "params.reduction"),
    ("FSPLoss", {"fsp_pairs": {"p": {"student_first": {"path": "s"}}}}, "params.fsp_pairs.p")])
def test_bad_param_values_are_located_config_errors(name, params, key):
    with pytest.raises(ConfigError) as error:
        build_criterion({"type": "GeneralizedCustomLoss",
                         "sub_terms": {"x": {"criterion": {"type": name, "params": params}}}})
    assert f"train.criterion.sub_terms.x.criterion.{key}" in str(error.value)


def test_hierarchical_context_loss_builds_through_the_config_path():
    fused, residual, teacher = leaves((2, 3, 4, 4), (2, 3, 4, 4), (2, 3, 4, 4))
    params = dict(student_module_path="abf_modules.0", student_module_io="output", teacher_module_path="t",
                  teacher_module_io="output", output_sizes=[2, 1])
    criterion = build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"hcl": {"criterion": {
        "type": "HierarchicalContextLoss", "params": params}, "factor": 1.0}}})
    total, _ = criterion(None, None, {"abf_modules.0": {"output": (fused, residual)}}, io(t=teacher), None)
    expected = td_losses.HierarchicalContextLoss(**params)({"abf_modules.0": {"output": (fused, residual)}},
                                                          io(t=teacher))
    close(total, expected.float())
    with pytest.raises(ConfigError, match="output_size"):
        build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"hcl": {"criterion": {
            "type": "HierarchicalContextLoss", "params": dict(params, output_size=[1])}}}})


# ---------------------------------------------------------------- special modules

class Tiny(nn.Module):
    """conv1/bn1/relu, layer1 (4 ch, 8x8), layer2 (8 ch, 4x4), avgpool, fc: torchvision-like paths."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(self.avgpool(x).flatten(1))


def tiny(seed=0):
    torch.manual_seed(seed)
    return Tiny().double()


def image(seed=5):
    return torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def run(root, post, x, output_paths, input_paths=()):
    capture = HookCapture(root, input_paths, output_paths)
    output = root(x)
    post(capture.io_dict)
    io_dict = capture.pop()
    capture.remove()
    return output, io_dict


def same_module(ours, theirs, output_paths, reduce, input_paths=()):
    """Copy torchdistill's weights into ours (state_dict keys must be equal), run both, compare the hooked
    outputs that ``reduce`` turns into a scalar, and that scalar's gradients on every parameter."""
    ours.double(), theirs.double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    results = []
    for module, post in ((ours, ours.post_forward), (theirs, theirs.secondary_forward)):
        output, io_dict = run(module, post, image(), output_paths, input_paths)
        value = reduce(output, io_dict)
        params = [p for p in module.parameters() if p.requires_grad]
        grads = torch.autograd.grad(value, params, allow_unused=True)
        results.append((output, io_dict, value, grads))
    (o1, io1, v1, g1), (o2, io2, v2, g2) = results
    close(o1, o2)
    close(v1, v2)
    assert len(g1) == len(g2)
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            close(a, b)
    return io1, io2


CONNECTORS = {"connector1": {"io": "output", "path": "student_model.layer1",
                             "conv2d_kwargs": {"in_channels": 4, "out_channels": 6, "kernel_size": 1, "bias": False},
                             "bn2d_kwargs": {"num_features": 6}},
              "connector2": {"io": "output", "path": "student_model.layer2",
                             "conv2d_kwargs": {"in_channels": 8, "out_channels": 3, "kernel_size": 3, "padding": 1}}}


def test_connector4dab_equals_torchdistill():
    model = tiny()
    ours = Connector4DAB(copy.deepcopy(model), False, connectors=CONNECTORS)
    theirs = td_wrapper.Connector4DAB(copy.deepcopy(model), CONNECTORS, **TD_DEVICE)
    paths = ["student_model.layer1", "student_model.layer2", "connector_dict.connector1", "connector_dict.connector2"]
    io1, io2 = same_module(ours, theirs, paths, lambda out, d: out.sum() + sum(
        d[f"connector_dict.connector{i}"]["output"].pow(2).sum() for i in (1, 2)))
    for path in paths:
        close(io1[path]["output"], io2[path]["output"])


def test_variance_branch4pad_equals_torchdistill(tmp_path):
    model = tiny()
    params = dict(input_module={"path": "student_model.avgpool", "io": "output"}, feat_dim=8,
                  var_estimator_ckpt=str(tmp_path / "var.pt"))
    ours = VarianceBranch4PAD(copy.deepcopy(model), False, **params)
    theirs = td_wrapper.VarianceBranch4PAD(copy.deepcopy(model), **params, **TD_DEVICE)
    same_module(ours, theirs, ["student_model.avgpool", "var_estimator"],
                lambda out, d: out.sum() + d["var_estimator"]["output"].exp().sum())
    ours.post_epoch_process()  # written by ours, read by torchdistill's loader
    other = td_wrapper.VarianceBranch4PAD(tiny(1), **params, **TD_DEVICE)
    for key, value in ours.var_estimator.state_dict().items():
        close(other.var_estimator.state_dict()[key].to(value.dtype), value)


def test_attention_based_fusion_and_knowledge_review_equal_torchdistill():
    torch.manual_seed(0)
    for uses_attention in (False, True):
        theirs = td_wrapper.AttentionBasedFusion(4, 6, 5, uses_attention).double()
        ours = AttentionBasedFusion(4, 6, 5, uses_attention).double()
        ours.load_state_dict(theirs.state_dict())
        x, y = leaves((2, 4, 4, 4), (2, 6, 2, 2))
        args = (x, y, 4) if uses_attention else (x,)
        for a, b in zip(ours(*args), theirs(*args)):
            close(a, b)
    abfs = [{"path": "student_model.layer1", "io": "output",
             "kwargs": {"in_channels": 4, "mid_channels": 6, "out_channels": 4}},
            {"path": "student_model.layer2", "io": "output",
             "kwargs": {"in_channels": 8, "mid_channels": 6, "out_channels": 8}},
            {"path": "student_model.avgpool", "io": "output",
             "kwargs": {"in_channels": 8, "mid_channels": 6, "out_channels": 8}}]
    model = tiny()
    ours = Student4KnowledgeReview(copy.deepcopy(model), False, abfs=abfs, sizes=[1, 4, 8])
    theirs = td_wrapper.Student4KnowledgeReview(copy.deepcopy(model), abfs, sizes=[1, 4, 8], **TD_DEVICE)
    paths = ["student_model.layer1", "student_model.layer2", "student_model.avgpool",
             "abf_modules.0", "abf_modules.1", "abf_modules.2"]
    (teacher,) = leaves((3, 4, 8, 8))
    hcl = dict(student_module_path="abf_modules.2", student_module_io="output", teacher_module_path="t",
               teacher_module_io="output")
    io1, io2 = same_module(ours, theirs, paths, lambda out, d: out.sum() + HierarchicalContextLoss(**hcl)(
        d, io(t=teacher)) + d["abf_modules.0"]["output"][0].sum())
    close(HierarchicalContextLoss(**hcl)(io1, io(t=teacher)),
          td_losses.HierarchicalContextLoss(**hcl)(io2, io(t=teacher)))


PARAPHRASER = {"k": 0.5, "num_input_channels": 8, "kernel_size": 3, "stride": 1, "padding": 1, "uses_bn": True}


@pytest.mark.parametrize("uses_decoder", [True, False])
def test_paraphraser_and_translator_equal_torchdistill(uses_decoder):
    torch.manual_seed(0)
    theirs = td_wrapper.Paraphraser4FactorTransfer(uses_decoder=uses_decoder, **PARAPHRASER).double()
    ours = Paraphraser4FactorTransfer(uses_decoder=uses_decoder, **PARAPHRASER).double()
    ours.load_state_dict(theirs.state_dict())
    (z,) = leaves((2, 8, 4, 4))
    close(ours(z), theirs(z))
    assert ours(z).shape[1] == (8 if uses_decoder else 4)
    theirs_t = td_wrapper.Translator4FactorTransfer(8, 4, uses_bn=uses_decoder).double()
    ours_t = Translator4FactorTransfer(8, 4, uses_bn=uses_decoder).double()
    ours_t.load_state_dict(theirs_t.state_dict())
    close(ours_t(z), theirs_t(z))


@pytest.mark.parametrize("uses_decoder, minimal", [
    (True, {"sequential": ["conv1", "bn1", "relu", "layer1", "layer2"]}), (False, None)])
def test_teacher4factor_transfer_equals_torchdistill(tmp_path, uses_decoder, minimal):
    model = tiny()
    params = dict(minimal=minimal, input_module_path="teacher_model.layer2", paraphraser_kwargs=PARAPHRASER,
                  paraphraser_ckpt=str(tmp_path / "paraphraser.pt"), uses_decoder=uses_decoder)
    ours = Teacher4FactorTransfer(copy.deepcopy(model), True, **params)
    theirs = td_wrapper.Teacher4FactorTransfer(copy.deepcopy(model), **params, **TD_DEVICE)
    for module in (ours, theirs):
        module.teacher_model.requires_grad_(False)
        module.eval()  # post_forward must put the paraphraser back in training mode when it decodes
    io1, io2 = same_module(ours, theirs, ["teacher_model.layer2", "paraphraser"],
                           lambda out, d: d["paraphraser"]["output"].pow(2).sum())
    assert ours.paraphraser.training == theirs.paraphraser.training == uses_decoder
    assert io1["teacher_model.layer2"]["output"].grad_fn is None  # the teacher runs without autograd
    ours.post_epoch_process()
    reloaded = td_wrapper.Teacher4FactorTransfer(tiny(1), **params, **TD_DEVICE)
    for key, value in ours.paraphraser.state_dict().items():
        close(reloaded.paraphraser.state_dict()[key].to(value.dtype), value)


def test_teacher4factor_transfer_loads_a_torchdistill_paraphraser(tmp_path):
    path = str(tmp_path / "p.pt")
    torch.manual_seed(3)
    trained = Paraphraser4FactorTransfer(**PARAPHRASER)
    td_util.save_module_ckpt(trained, path)
    ours = Teacher4FactorTransfer(Tiny(), True, minimal=None, input_module_path="teacher_model.layer2",
                                  paraphraser_kwargs=PARAPHRASER, paraphraser_ckpt=path, uses_decoder=False)
    for key, value in trained.state_dict().items():
        assert torch.equal(ours.paraphraser.state_dict()[key], value)


def test_student4factor_transfer_equals_torchdistill_and_ft_loss_runs_on_both_sides():
    model = tiny()
    translator = {"num_input_channels": 8, "num_output_channels": 4, "uses_bn": False}
    ours = Student4FactorTransfer(copy.deepcopy(model), False, input_module_path="student_model.layer2",
                                  translator_kwargs=translator)
    theirs = td_wrapper.Student4FactorTransfer(copy.deepcopy(model), "student_model.layer2", translator, **TD_DEVICE)
    (factor,) = leaves((3, 4, 4, 4))
    io1, io2 = same_module(ours, theirs, ["student_model.layer2", "translator"],
                           lambda out, d: out.sum() + FTLoss()(d, io(paraphraser=factor)))
    close(io1["translator"]["output"], io2["translator"]["output"])


def test_empty_module_passes_input_through_like_torchdistill():
    x = image()
    ours = EmptyModule(Tiny())
    assert ours(x) is x and td_wrapper.EmptyModule()(x) is x
    assert ours(x, 1) == td_wrapper.EmptyModule()(x, 1)
    assert "model.fc.weight" in ours.state_dict()  # the side's checkpoint keeps the wrapped model
    with pytest.raises(TypeError):
        EmptyModule(Tiny(), False, unused=1)


SPECIALS = {
    "Connector4DAB": ({"connectors": CONNECTORS}, ["connector_dict.connector1"]),
    "VarianceBranch4PAD": ({"input_module": {"path": "student_model.avgpool", "io": "output"}, "feat_dim": 8,
                            "var_estimator_ckpt": None}, ["var_estimator"]),
    "Student4FactorTransfer": ({"input_module_path": "student_model.layer2",
                                "translator_kwargs": {"num_input_channels": 8, "num_output_channels": 4}},
                               ["translator"]),
    "Student4KnowledgeReview": ({"abfs": [{"path": "student_model.layer2", "io": "output", "kwargs": {
        "in_channels": 8, "mid_channels": 4, "out_channels": 8}}], "sizes": [1]}, ["abf_modules.0"]),
}


@pytest.mark.parametrize("name", sorted(SPECIALS))
def test_special_modules_build_from_a_side_block_and_refuse_a_misspelt_param(name):
    params, hooks = SPECIALS[name]
    side = ModelSide(Tiny(), {"special": {"type": name, "params": params}, "forward_hook": {"output": hooks}})
    output, io_dict = side(image().float())
    assert output.shape == (3, 5) and set(hooks) <= set(io_dict)
    with pytest.raises(ConfigError, match="rejected these params") as error:
        ModelSide(Tiny(), {"special": {"type": name, "params": dict(params, devcie="cpu")}})
    assert "train.student.special.params" in str(error.value)


def test_special_module_config_errors_name_the_key():
    bad = {"c": {"io": "output", "path": "student_model.layer1", "conv2d_kwargs": {"in_channels": 4, "out_chanels": 2,
                                                                                   "kernel_size": 1}}}
    with pytest.raises(ConfigError, match="out_chanels") as error:
        ModelSide(Tiny(), {"special": {"type": "Connector4DAB", "params": {"connectors": bad}}})
    assert "train.student.special.params.connectors.c" in str(error.value)
    with pytest.raises(ConfigError, match="needs translator_kwargs") as error:
        ModelSide(Tiny(), {"special": {"type": "Student4FactorTransfer",
                                       "params": {"input_module_path": "student_model.layer2"}}})
    assert "train.student.special.params.translator_kwargs" in str(error.value)


def test_teacher_side_trains_only_the_paraphraser():
    block = {"special": {"type": "Teacher4FactorTransfer", "params": {
        "minimal": None, "input_module_path": "teacher_model.layer2", "paraphraser_kwargs": PARAPHRASER,
        "paraphraser_ckpt": None, "uses_decoder": True}},
        "forward_hook": {"output": ["teacher_model.layer2", "paraphraser"]},
        "requires_grad": True, "frozen_modules": ["teacher_model"]}
    side = ModelSide(Tiny(), block, is_teacher=True)
    _, io_dict = side(image().float())
    trainable = {n for n, p in side.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("root.paraphraser.") for n in trainable)
    reconstruction = build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"reconst": {"criterion": {
        "type": "MSELoss", "params": {"reduction": "sum",
                                      "input": {"is_from_teacher": True, "module_path": "paraphraser", "io": "output"},
                                      "target": {"is_from_teacher": True, "module_path": "teacher_model.layer2",
                                                 "io": "output"}}}, "factor": 1.0}}})
    total, _ = reconstruction(None, None, {}, io_dict, None)
    total.backward()
    assert side.root.paraphraser.decoder[0].weight.grad is not None
