"""PKT, RKD, SPKD, CCKD, VID, ICKD, KTAAD and CRD against torchdistill 1.1.5: values and gradients in float64."""
import copy

import numpy as np
import pytest
import torch
import torchvision.datasets  # noqa: F401  (torchdistill's dataset registry reads it at import)
from torch import nn
from torchdistill.datasets.wrapper import CRDDatasetWrapper as TdCRDDatasetWrapper
from torchdistill.losses import mid_level as td
from torchdistill.models import wrapper as tdw

from distillkit.data.wrappers import CRDDatasetWrapper
from distillkit.errors import ConfigError
from distillkit.hooks import HookCapture
from distillkit.losses import ShapeMismatchError, build_criterion
from distillkit.losses.contrastive import CRDLoss
from distillkit.losses.ickd import ChSimLoss
from distillkit.losses.ktaad import AffinityLoss, KTALoss
from distillkit.losses.relational import CCKDLoss, PKTLoss, RKDLoss, SPKDLoss
from distillkit.losses.vid import VIDLoss
from distillkit.model_side import ModelSide
from distillkit.models.special.cckd import Linear4CCKD
from distillkit.models.special.crd import Linear4CRD, Normalizer4CRD
from distillkit.models.special.ickd import ChannelSimilarityEmbed, Student4ICKD
from distillkit.models.special.ktaad import Student4KTAAD
from distillkit.models.special.vid import Regressor4VID, VariationalDistributor4VID
from distillkit.registry import DATASET_WRAPPERS

TOL = dict(rtol=1e-5, atol=1e-5)
CPU = dict(device=torch.device("cpu"), device_ids=None, distributed=False)


def leaves(*shapes, seed=0):
    torch.manual_seed(seed)
    return [torch.randn(*s, dtype=torch.float64) for s in shapes]


def run_both(ours, theirs, student_io, teacher_io, **extra):
    """Both losses on copies of the io_dicts' tensors (as leaves); returns (loss, grads) per side."""
    results = []
    for loss_fn in (ours, theirs):
        copies = {}

        def leafy(io):
            out = {}
            for path, slot in io.items():
                out[path] = {}
                for key, value in slot.items():
                    if isinstance(value, torch.Tensor):
                        value = value.detach().clone().requires_grad_(True)
                        copies[(id(io), path, key)] = value
                    elif isinstance(value, tuple):
                        value = tuple(v.detach().clone().requires_grad_(True) for v in value)
                        copies[(id(io), path, key)] = value
                    out[path][key] = value
            return out

        s_io, t_io = leafy(student_io), leafy(teacher_io)
        loss = loss_fn(s_io, t_io, None, **extra)
        loss.sum().backward()
        grads = {}
        for key, value in copies.items():
            for i, v in enumerate(value if isinstance(value, tuple) else (value,)):
                grads[key + (i,)] = v.grad
        results.append((loss, grads))
    return results


def assert_same(ours, theirs, student_io, teacher_io, **extra):
    (loss, grads), (ref_loss, ref_grads) = run_both(ours, theirs, student_io, teacher_io, **extra)
    torch.testing.assert_close(loss.reshape(()), ref_loss.reshape(()).to(loss.dtype), **TOL)
    assert grads.keys() == ref_grads.keys()
    for key in grads:
        if ref_grads[key] is None:
            assert grads[key] is None or torch.count_nonzero(grads[key]) == 0, key
        else:
            torch.testing.assert_close(grads[key], ref_grads[key], **TOL)
    return loss


def test_pkt_matches_torchdistill():
    s, t = leaves((6, 5), (6, 7))
    params = dict(student_module_path="fc", student_module_io="input", teacher_module_path="fc",
                  teacher_module_io="input", eps=1e-7)
    loss = assert_same(PKTLoss(**params), td.PKTLoss(**params), {"fc": {"input": s}}, {"fc": {"input": t}})
    assert loss.item() > 0


@pytest.mark.parametrize("dist_factor, angle_factor, reduction", [(1.0, 2.0, "mean"), (0.0, 2.0, "sum"),
                                                                  (1.0, 0.0, "mean")])
def test_rkd_matches_torchdistill(dist_factor, angle_factor, reduction):
    s, t = leaves((5, 3, 2, 2), (5, 4, 2, 2), seed=1)
    params = dict(student_output_path="layer4", teacher_output_path="layer4", dist_factor=dist_factor,
                  angle_factor=angle_factor, reduction=reduction)
    assert_same(RKDLoss(**params), td.RKDLoss(**params), {"layer4": {"output": s}}, {"layer4": {"output": t}})


@pytest.mark.parametrize("reduction", ["batchmean", "sum"])
def test_spkd_matches_torchdistill(reduction):
    s, t = leaves((4, 3, 2, 2), (4, 5, 3, 3), seed=2)
    params = dict(student_output_path="layer4", teacher_output_path="layer4", reduction=reduction)
    assert_same(SPKDLoss(**params), td.SPKDLoss(**params), {"layer4": {"output": s}}, {"layer4": {"output": t}})


@pytest.mark.parametrize("kernel", [{"type": "bilinear"}, {"type": "gaussian", "gamma": 0.4, "max_p": 2},
                                    {"type": "gaussian", "gamma": 0.3, "max_p": 3}])
@pytest.mark.parametrize("reduction", ["batchmean", "sum"])
def test_cckd_matches_torchdistill(kernel, reduction):
    s, t = leaves((5, 4), (5, 4), seed=3)
    s, t = s / 2, t / 2
    params = dict(student_linear_path="linear", teacher_linear_path="linear", reduction=reduction)
    ours = CCKDLoss(kernel_config=kernel, **params)
    assert_same(ours, td.CCKDLoss(kernel_config=kernel, **params), {"linear": {"output": s}},
                {"linear": {"output": t}})
    # the sample configs' spelling: kernel_params with key
    spelled = {("key" if k == "type" else k): v for k, v in kernel.items()}
    again = CCKDLoss(kernel_params=spelled, **params)
    torch.testing.assert_close(again({"linear": {"output": s}}, {"linear": {"output": t}}),
                               ours({"linear": {"output": s}}, {"linear": {"output": t}}))


def copy_weights(ours: nn.Module, theirs: nn.Module) -> None:
    """Ours' state_dict into theirs: the keys must be the same (torchdistill's names)."""
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    theirs.load_state_dict(ours_state)


def run_special(wrapper, x, hooked, post):
    """Forward, then the wrapper's post step, with ``hooked`` output paths captured."""
    capture = HookCapture(wrapper, [], hooked)
    output = wrapper(x)
    post(capture.io_dict)
    io = capture.pop()
    capture.remove()
    return output, io


def compare_special(ours, theirs, x, hooked, compared):
    """Same weights, same input: the special layers' outputs and the parameter gradients agree."""
    copy_weights(ours, theirs)
    results = []
    for wrapper, post in ((ours, ours.post_forward), (theirs, theirs.secondary_forward)):
        wrapper.double().train()
        _, io = run_special(wrapper, x, hooked, post)
        outputs = [io[p]["output"] for p in compared]
        flat = [o for out in outputs for o in (out if isinstance(out, tuple) else (out,))]
        sum((o.sin() * torch.arange(o.numel(), dtype=o.dtype).reshape(o.shape).cos()).sum() for o in flat).backward()
        results.append((flat, {n: p.grad for n, p in wrapper.named_parameters() if p.grad is not None}))
    (flat, grads), (ref_flat, ref_grads) = results
    for a, b in zip(flat, ref_flat):
        torch.testing.assert_close(a, b, **TOL)
    assert grads.keys() == ref_grads.keys() and grads
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], **TOL)


class Tiny(nn.Module):
    """conv -> layer1 (4 ch) -> layer2 (6 ch, stride 2) -> avgpool -> fc."""

    def __init__(self, width=4):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(width, 6, 3, stride=2, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.avgpool(self.layer2(self.layer1(x))).flatten(1))


def regressor_spec(**extra):
    return {"in_channels": 4, "middle_channels": 5, "out_channels": 6, "eps": 1e-5, "init_pred_var": 5.0, **extra}


def test_vid_regressor_and_distributor_match_torchdistill():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    ours = VariationalDistributor4VID(Tiny(), regressors={"r1": {"io": "output", "path": "student_model.layer1",
                                                                 "kwargs": regressor_spec()}})
    theirs = tdw.VariationalDistributor4VID(Tiny(), regressors={"r1": {"io": "output", "path": "student_model.layer1",
                                                                       "kwargs": regressor_spec()}}, **CPU)
    compare_special(ours, theirs, x, ["student_model.layer1", "regressor_dict.r1"], ["regressor_dict.r1"])
    # initial variance as torchdistill sets it, and the three spellings of the regressor's params
    fresh = Regressor4VID(**regressor_spec())
    torch.testing.assert_close(fresh.soft_plus_param, tdw.Regressor4VID(**regressor_spec()).soft_plus_param)
    for spec in ({"regressor_kwargs": regressor_spec()}, regressor_spec()):
        VariationalDistributor4VID(Tiny(), regressors={"r": {"io": "output", "path": "student_model.layer1", **spec}})
    with pytest.raises(ConfigError, match="unknown params mid_channels"):
        VariationalDistributor4VID(Tiny(), regressors={"r": {"io": "output", "path": "student_model.layer1",
                                                             "kwargs": regressor_spec(mid_channels=5)}})


def test_vid_loss_matches_torchdistill():
    mean1, t1, mean2, t2 = leaves((2, 3, 4, 4), (2, 3, 4, 4), (2, 5, 2, 2), (2, 5, 2, 2), seed=5)
    var1 = torch.rand(1, 3, 1, 1, dtype=torch.float64) + 0.5
    var2 = torch.rand(1, 5, 1, 1, dtype=torch.float64) + 0.5
    pairs = {"pair1": {"teacher": {"io": "output", "path": "layer1"},
                       "student": {"io": "output", "path": "regressor_dict.r1"}, "weight": 1},
             "pair2": {"teacher": {"io": "output", "path": "layer2"},
                       "student": {"io": "output", "path": "regressor_dict.r2"}, "weight": 0.5}}
    student_io = {"regressor_dict.r1": {"output": (mean1, var1)}, "regressor_dict.r2": {"output": (mean2, var2)}}
    teacher_io = {"layer1": {"output": t1}, "layer2": {"output": t2}}
    assert_same(VIDLoss(pairs, margin=1.0), td.VIDLoss(pairs, margin=1.0), student_io, teacher_io)
    legacy = {name: {"teacher": pair["teacher"], "student": pair["student"], "factor": pair["weight"]}
              for name, pair in pairs.items()}
    torch.testing.assert_close(VIDLoss(legacy)(student_io, teacher_io), VIDLoss(pairs)(student_io, teacher_io))
    with pytest.raises(ShapeMismatchError, match="out_channels to 3"):
        VIDLoss(pairs)(student_io, {"layer1": {"output": t1}, "layer2": {"output": t1}})


def test_ickd_embed_and_loss_match_torchdistill():
    torch.manual_seed(6)
    x = torch.randn(3, 3, 6, 6, dtype=torch.float64)
    embeddings = {"embed1": {"path": "student_model.layer2", "io": "output", "in_channels": 6, "out_channels": 5}}
    ours = Student4ICKD(Tiny(), embeddings=embeddings)
    theirs = tdw.Student4ICKD(Tiny(), embeddings=copy.deepcopy(embeddings), **CPU)
    compare_special(ours, theirs, x, ["student_model.layer2", "embed_dict.embed1"], ["embed_dict.embed1"])
    assert isinstance(ours.embed_dict["embed1"], ChannelSimilarityEmbed)
    s, t, s2, t2 = leaves((3, 5, 3, 3), (3, 5, 4, 4), (3, 2, 2, 2), (3, 2, 2, 2), seed=7)
    pairs = {"pair1": {"teacher": {"io": "output", "path": "layer4"},
                       "student": {"io": "output", "path": "embed_dict.embed1"}, "weight": 1},
             "pair2": {"teacher": {"io": "output", "path": "layer3"},
                       "student": {"io": "output", "path": "embed_dict.embed2"}, "weight": 3}}
    student_io = {"embed_dict.embed1": {"output": s}, "embed_dict.embed2": {"output": s2}}
    teacher_io = {"layer4": {"output": t}, "layer3": {"output": t2}}
    assert_same(ChSimLoss(pairs), td.ChSimLoss(pairs), student_io, teacher_io)
    with pytest.raises(ShapeMismatchError, match="out_channels to 4"):
        ChSimLoss(pairs)(student_io, {"layer4": {"output": torch.randn(3, 4, 3, 3)}, "layer3": {"output": t2}})


def ktaad_configs():
    feature = {"conv_kwargs": {"in_channels": 6, "out_channels": 4, "kernel_size": 3, "padding": 1},
               "bn_kwargs": {"num_features": 4}, "relu_kwargs": {"inplace": False}}
    affinity = {"conv_kwargs": {"in_channels": 6, "out_channels": 5, "kernel_size": 1}}
    return dict(input_module_path="student_model.layer2", feature_adapter_config=feature,
                affinity_adapter_config=affinity)


def test_ktaad_student_matches_torchdistill():
    torch.manual_seed(8)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    ours = Student4KTAAD(Tiny(), **ktaad_configs())
    theirs = tdw.Student4KTAAD(Tiny(), **ktaad_configs(), **CPU)
    compare_special(ours, theirs, x, ["student_model.layer2", "feature_adapter", "affinity_adapter"],
                    ["feature_adapter", "affinity_adapter"])


@pytest.mark.parametrize("p, q, reduction", [(1, 2, "mean"), (1, 2, "sum"), (2, 2, "mean"), (2, 1, "sum")])
def test_kta_loss_matches_torchdistill(p, q, reduction):
    s, t = leaves((3, 4, 3, 3), (3, 4, 3, 3), seed=9)
    params = dict(p=p, q=q, reduction=reduction, knowledge_translator_path="paraphraser.encoder",
                  feature_adapter_path="feature_adapter")
    assert_same(KTALoss(**params), td.KTALoss(**params), {"feature_adapter": {"output": s}},
                {"paraphraser.encoder": {"output": t}})


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_affinity_loss_matches_torchdistill(reduction):
    s, t = leaves((3, 4, 3, 5), (3, 4, 3, 5), seed=10)
    t = torch.cat([s[:1], t[1:]])  # one sample where student and teacher agree
    params = dict(student_module_path="affinity_adapter", teacher_module_path="paraphraser.encoder",
                  reduction=reduction)
    assert_same(AffinityLoss(**params), td.AffinityLoss(**params), {"affinity_adapter": {"output": s}},
                {"paraphraser.encoder": {"output": t}})


@pytest.mark.parametrize("is_teacher", [False, True])
def test_linear4cckd_matches_torchdistill(is_teacher):
    torch.manual_seed(11)
    x = torch.randn(3, 3, 6, 6, dtype=torch.float64)
    kwargs = dict(input_module={"path": "model.avgpool", "io": "output"},
                  linear_kwargs={"in_features": 6, "out_features": 4, "bias": True})
    ours = Linear4CCKD(Tiny(), is_teacher, **kwargs)
    side = {"teacher_model": Tiny()} if is_teacher else {"student_model": Tiny()}
    theirs = tdw.Linear4CCKD(**kwargs, **CPU, **side)
    compare_special(ours, theirs, x, ["model.avgpool", "linear"], ["linear"])
    if is_teacher:
        assert ours.model.fc.weight.grad is None


@pytest.mark.parametrize("power", [2, 4])
def test_linear4crd_matches_torchdistill(power):
    torch.manual_seed(12)
    x = torch.randn(3, 3, 6, 6, dtype=torch.float64)
    kwargs = dict(input_module_path="model.avgpool", linear_kwargs={"in_features": 6, "out_features": 4}, power=power)
    ours = Linear4CRD(Tiny(), False, **kwargs)
    theirs = tdw.Linear4CRD(**kwargs, **CPU, student_model=Tiny())
    theirs_forward = theirs.forward
    theirs.forward = lambda inputs: theirs_forward(inputs, {})
    compare_special(ours, theirs, x, ["model.avgpool", "normalizer"], ["normalizer"])
    assert isinstance(ours.normalizer, Normalizer4CRD)


CRD_PARAMS = dict(student_norm_module_path="normalizer", student_empty_module_path="empty",
                  teacher_norm_module_path="normalizer", input_size=4, output_size=20, num_negative_samples=5,
                  num_samples=20, temperature=0.07, momentum=0.5, eps=1e-7)


def crd_pair():
    ours = CRDLoss(**CRD_PARAMS).double()
    theirs = td.CRDLoss(**CRD_PARAMS).double()
    copy_weights(ours, theirs)
    theirs.prob = theirs.probs  # torchdistill's draw() reads self.prob, which it never sets
    return ours, theirs


def crd_batch(seed, with_contrast=True):
    generator = torch.Generator().manual_seed(seed)
    s = torch.nn.functional.normalize(torch.randn(3, 4, dtype=torch.float64, generator=generator), dim=1)
    t = torch.nn.functional.normalize(torch.randn(3, 4, dtype=torch.float64, generator=generator), dim=1)
    pos_idx = torch.randperm(20, generator=generator)[:3]
    supp = {"pos_idx": pos_idx}
    if with_contrast:
        negatives = torch.randint(0, 20, (3, 5), generator=generator)
        supp["contrast_idx"] = torch.cat([pos_idx[:, None], negatives], dim=1)
    return s, t, supp


def run_crd(ours, theirs, s, t, supp, seed=None):
    """Ours gets the indices as supp_dict; torchdistill reads them from the hooked 'empty' module's input."""
    results = []
    for loss_fn, kwargs, io_extra in ((ours, {"supp_dict": supp}, {}), (theirs, {}, {"empty": {"input": supp}})):
        if seed is not None:
            torch.manual_seed(seed)
        s_leaf, t_leaf = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
        loss = loss_fn({"normalizer": {"output": s_leaf}, **io_extra}, {"normalizer": {"output": t_leaf}}, None,
                       **kwargs)
        loss.sum().backward()
        results.append((loss.reshape(()), s_leaf.grad, t_leaf.grad))
    return results


def assert_crd_same(ours, theirs, results):
    (loss, gs, gt), (ref_loss, ref_gs, ref_gt) = results
    torch.testing.assert_close(loss, ref_loss, **TOL)
    torch.testing.assert_close(gs, ref_gs, **TOL)
    torch.testing.assert_close(gt, ref_gt, **TOL)
    for name, buffer in ours.named_buffers():
        torch.testing.assert_close(buffer, dict(theirs.named_buffers())[name], **TOL)


def test_crd_loss_and_memory_bank_match_torchdistill():
    ours, theirs = crd_pair()
    for step in range(3):  # step 0 fixes the normalisation constants; later steps reuse them
        assert_crd_same(ours, theirs, run_crd(ours, theirs, *crd_batch(step)))
    assert ours.params[2] > 0 and ours.params[3] > 0


def test_crd_sampled_negatives_match_torchdistill_seeded():
    ours, theirs = crd_pair()
    for step in range(2):
        assert_crd_same(ours, theirs, run_crd(ours, theirs, *crd_batch(step, with_contrast=False), seed=100 + step))


def test_crd_seeded_memory_init_matches_and_checks_indices():
    torch.manual_seed(13)
    ours = CRDLoss(**CRD_PARAMS)
    torch.manual_seed(13)
    theirs = td.CRDLoss(**CRD_PARAMS)
    for name, buffer in theirs.named_buffers():
        torch.testing.assert_close(dict(ours.named_buffers())[name], buffer)
    s, t, supp = crd_batch(0)
    io_s, io_t = {"normalizer": {"output": s.float()}}, {"normalizer": {"output": t.float()}}
    with pytest.raises(ConfigError, match="CRDDatasetWrapper"):
        ours(io_s, io_t)
    with pytest.raises(ShapeMismatchError, match="num_negative_samples"):
        ours(io_s, io_t, supp_dict={"pos_idx": supp["pos_idx"], "contrast_idx": supp["contrast_idx"][:, :3]})
    with pytest.raises(ShapeMismatchError, match="output_size"):
        ours(io_s, io_t, supp_dict={"pos_idx": supp["pos_idx"] + 20})


class LabelledSet(torch.utils.data.Dataset):
    def __init__(self, labels):
        self.targets = list(labels)
        self.classes = sorted(set(labels))

    def __getitem__(self, index):
        return torch.full((2,), float(index)), self.targets[index]

    def __len__(self):
        return len(self.targets)


@pytest.mark.parametrize("mode, ratio, k", [("exact", 1.0, 4), ("relax", 1.0, 3), ("exact", 0.5, 2),
                                            ("relax", 1.0, 40)])
def test_crd_dataset_wrapper_matches_torchdistill_seeded(mode, ratio, k):
    labels = [2, 0, 1, 1, 0, 2, 2, 1, 0, 0, 1, 2]
    items = []
    for cls in (DATASET_WRAPPERS["CRDDatasetWrapper"], TdCRDDatasetWrapper):
        np.random.seed(14)
        wrapped = cls(LabelledSet(labels), num_negative_samples=k, mode=mode, ratio=ratio)
        items.append([wrapped[i] for i in range(len(wrapped))])
    assert len(items[0]) == len(labels)
    for (sample, target, supp), (ref_sample, ref_target, ref_supp) in zip(*items):
        assert torch.equal(sample, ref_sample) and target == ref_target
        assert supp["pos_idx"] == ref_supp["pos_idx"]
        np.testing.assert_array_equal(supp["contrast_idx"], ref_supp["contrast_idx"])
        assert all(labels[j] != target for j in supp["contrast_idx"][1:])
    assert DATASET_WRAPPERS["ContrastiveDataset"] is CRDDatasetWrapper
    batch = torch.utils.data.default_collate(items[0][:3])
    assert batch[2]["contrast_idx"].shape == (3, k + 1)


def test_crd_dataset_wrapper_refuses_unlabelled_data():
    with pytest.raises(ConfigError, match="targets"):
        CRDDatasetWrapper(torch.utils.data.TensorDataset(torch.zeros(3)), num_negative_samples=2)


def term(loss_type, params, factor=1.0):
    return {"criterion": {"type": loss_type, "params": params}, "factor": factor}


def test_every_term_builds_through_the_config_path():
    s2, t2, s4, t4 = leaves((4, 6), (4, 6), (4, 3, 2, 2), (4, 3, 2, 2), seed=15)
    var = torch.ones(1, 3, 1, 1, dtype=torch.float64)
    sub_terms = {
        "pkt": term("PKTLoss", dict(student_module_path="fc", student_module_io="input", teacher_module_path="fc",
                                    teacher_module_io="input")),
        "rkd": term("RKDLoss", dict(student_output_path="layer", teacher_output_path="layer", dist_factor=1.0,
                                    angle_factor=2.0, reduction="mean")),
        "spkd": term("SPKDLoss", dict(student_output_path="layer", teacher_output_path="layer",
                                      reduction="batchmean")),
        "cckd": term("CCKDLoss", dict(student_linear_path="linear", teacher_linear_path="linear",
                                      kernel_params={"type": "gaussian", "gamma": 0.4, "max_p": 2},
                                      reduction="batchmean"), 0.003),
        "vid": term("VIDLoss", dict(feature_pairs={"p": {"student": {"io": "output", "path": "regressor_dict.r"},
                                                         "teacher": {"io": "output", "path": "layer"},
                                                         "factor": 1}}, margin=1.0)),
        "ickd": term("ChSimLoss", dict(feature_pairs={"p": {"student": {"io": "output", "path": "embed_dict.e"},
                                                            "teacher": {"io": "output", "path": "layer"},
                                                            "weight": 1}})),
        "kta": term("KTALoss", dict(knowledge_translator_path="layer", feature_adapter_path="feature_adapter")),
        "aff": term("AffinityLoss", dict(student_module_path="affinity_adapter", teacher_module_path="layer")),
        "crd": term("CRDLoss", dict(CRD_PARAMS, input_size=6)),
    }
    criterion = build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": sub_terms}).double()
    student_io = {"fc": {"input": s2}, "layer": {"output": s4}, "linear": {"output": s2},
                  "regressor_dict.r": {"output": (s4, var)}, "embed_dict.e": {"output": s4},
                  "feature_adapter": {"output": s4}, "affinity_adapter": {"output": s4},
                  "normalizer": {"output": nn.functional.normalize(s2, dim=1)}}
    teacher_io = {"fc": {"input": t2}, "layer": {"output": t4}, "linear": {"output": t2},
                  "normalizer": {"output": nn.functional.normalize(t2, dim=1)}}
    supp = {"pos_idx": torch.arange(4), "contrast_idx": torch.randint(0, 20, (4, 6))}
    total, terms = criterion(None, None, student_io, teacher_io, None, supp_dict=supp)
    assert set(terms) == set(sub_terms) and torch.isfinite(total)
    assert all(value.dim() == 0 for value in terms.values())
    assert criterion.supp_readers == {"crd"}


@pytest.mark.parametrize("loss_type, params, misspelt", [
    ("PKTLoss", dict(student_module_path="fc", student_module_io="input", teacher_module_path="fc",
                     teacher_module_io="input"), "epsilon"),
    ("RKDLoss", dict(student_output_path="l", teacher_output_path="l", angle_factor=2.0, reduction="mean"),
     "dist_facter"),
    ("SPKDLoss", dict(student_output_path="l", teacher_output_path="l", reduction="batchmean"), "reduce"),
    ("CCKDLoss", dict(student_linear_path="l", teacher_linear_path="l", kernel_config={"type": "bilinear"},
                      reduction="batchmean"), "kernel"),
    ("VIDLoss", dict(feature_pairs={"p": {"student": {"path": "a"}, "teacher": {"path": "b"}}}), "margins"),
    ("ChSimLoss", dict(feature_pairs={"p": {"student": {"path": "a"}, "teacher": {"path": "b"}}}), "weight"),
    ("KTALoss", dict(p=1, q=2), "knowledge_translator"),
    ("AffinityLoss", dict(student_module_path="a", teacher_module_path="b"), "student_io"),
    ("CRDLoss", dict(CRD_PARAMS), "num_negatives"),
])
def test_misspelt_params_are_refused(loss_type, params, misspelt):
    with pytest.raises(ConfigError, match=misspelt):
        build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"x": term(loss_type,
                                                                                   {**params, misspelt: 1})}})


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="reduction must be one of"):
        RKDLoss("a", "b", 1.0, 2.0, "none")
    with pytest.raises(ConfigError, match="gamma, max_p"):
        CCKDLoss("a", "b", kernel_config={"type": "gaussian", "gamma": 0.4})
    with pytest.raises(ConfigError, match="exactly one of kernel_config"):
        CCKDLoss("a", "b", reduction="batchmean")
    with pytest.raises(ConfigError, match="lacks teacher"):
        VIDLoss({"p": {"student": {"path": "a"}, "teacher_": {"path": "b"}}})
    with pytest.raises(ConfigError, match="ChannelSimilarityEmbed takes"):
        Student4ICKD(Tiny(), embeddings={"e": {"io": "output", "path": "student_model.layer2", "in_channel": 6}})
    with pytest.raises(ConfigError, match="missing bn_kwargs"):
        Student4KTAAD(Tiny(), input_module_path="student_model.layer2",
                      feature_adapter_config={"conv_kwargs": {}}, affinity_adapter_config={"conv_kwargs": {}})


def test_special_modules_run_inside_model_sides():
    torch.manual_seed(16)
    x = torch.randn(4, 3, 6, 6)
    linear = {"input_module": {"path": "model.avgpool", "io": "output"},
              "linear_kwargs": {"in_features": 6, "out_features": 3}}
    teacher = ModelSide(Tiny(), {"special": {"type": "Linear4CCKD", "params": linear}, "requires_grad": True,
                                 "frozen_modules": ["model"], "forward_hook": {"output": ["linear"]}}, is_teacher=True)
    student = ModelSide(Tiny(), {"special": {"type": "VariationalDistributor4VID", "params": {"regressors": {
        "r1": {"io": "output", "path": "student_model.layer2", "kwargs": dict(regressor_spec(), in_channels=6)}}}},
        "forward_hook": {"output": ["student_model.layer2", "regressor_dict.r1"]}})
    _, teacher_io = teacher(x)
    _, student_io = student(x)
    assert teacher_io["linear"]["output"].shape == (4, 3) and teacher_io["linear"]["output"].requires_grad
    mean, variance = student_io["regressor_dict.r1"]["output"]
    assert mean.shape == (4, 6, 3, 3) and variance.shape == (1, 6, 1, 1)
    crd_side = ModelSide(Tiny(), {"special": {"type": "Linear4CRD", "params": {
        "input_module_path": "model.avgpool", "linear_kwargs": {"in_features": 6, "out_features": 5}}},
        "forward_hook": {"output": ["normalizer"]}})
    _, crd_io = crd_side(x)
    torch.testing.assert_close(crd_io["normalizer"]["output"].norm(dim=1), torch.ones(4))
