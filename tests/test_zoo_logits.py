"""Logit-based families against torchdistill 1.1.5 (values and gradients, float64): DIST, DIST+, logit
standardization, SRD (+ SRDModelWrapper), SKD, SSKD (+ SSWrapper4SSKD, SSKDDatasetWrapper); DKD against its
formula written out here; the head-network-distillation models' structure."""
import math
import warnings

import pytest
import torch
from PIL import Image
from torch import nn
from torchdistill.losses import mid_level as td
from torchdistill.models import wrapper as td_wrapper

from distillkit.errors import ConfigError
from distillkit.losses import ShapeMismatchError, build_criterion
from distillkit.losses.dist import DISTLoss, DISTPlusLoss
from distillkit.losses.dkd import DKDLoss
from distillkit.losses.logit_std import LogitStdKDLoss
from distillkit.losses.skd import SKDDirectionLoss, SKDInstanceLoss
from distillkit.losses.srd import SRDLoss
from distillkit.losses.sskd import AuxSSKDLoss, SSKDLoss
from distillkit.model_side import ModelSide
from distillkit.models.special.srd import SRDModelWrapper
from distillkit.data.wrappers import SSKDDatasetWrapper
from distillkit.models.special.sskd import SSWrapper4SSKD

TOL = dict(rtol=1e-5, atol=1e-5)
CPU = torch.device("cpu")
LOGIT_PATHS = dict(student_module_path="fc", student_module_io="output", teacher_module_path="fc",
                   teacher_module_io="output")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster than two that wait for each other on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def leaves(*shapes, seed=0):
    torch.manual_seed(seed)
    return [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]


def io(**tensors):
    return {path.replace("__", "."): {"output": t} for path, t in tensors.items()}


def assert_same(ours, theirs, inputs, call):
    """Both losses give the same value and the same gradients with respect to every input."""
    value_ours, value_theirs = call(ours), call(theirs)
    torch.testing.assert_close(value_ours, value_theirs, **TOL)
    grads_ours = torch.autograd.grad(value_ours, inputs, allow_unused=True)
    grads_theirs = torch.autograd.grad(value_theirs, inputs, allow_unused=True)
    for g_ours, g_theirs in zip(grads_ours, grads_theirs):
        assert (g_ours is None) == (g_theirs is None)
        if g_ours is not None:
            torch.testing.assert_close(g_ours, g_theirs, **TOL)


# --- DIST, DIST+, logit standardization --------------------------------------------------------------

def test_dist_matches_torchdistill():
    z_s, z_t = leaves((8, 5), (8, 5))
    params = dict(LOGIT_PATHS, beta=1.5, gamma=0.7, tau=2.0)
    assert_same(DISTLoss(**params), td.DISTLoss(**params), [z_s, z_t], lambda loss: loss(io(fc=z_s), io(fc=z_t)))


def test_dist_plus_matches_torchdistill():
    z_s, z_t, f_s, f_t = leaves((6, 5), (6, 5), (6, 4, 3, 3), (6, 4, 3, 3), seed=1)
    params = dict(student_logit_module_path="fc", student_logit_module_io="output", teacher_logit_module_path="fc",
                  teacher_logit_module_io="output", student_feature_module_path="layer4",
                  student_feature_module_io="output", teacher_feature_module_path="layer4",
                  teacher_feature_module_io="output", beta=2.0, gamma=1.5, iota=0.5, kappa=3.0, tau=1.5)
    assert_same(DISTPlusLoss(**params), td.DISTPlusLoss(**params), [z_s, z_t, f_s, f_t],
                lambda loss: loss(io(fc=z_s, layer4=f_s), io(fc=z_t, layer4=f_t)))


@pytest.mark.parametrize("alpha, beta, with_targets", [(0.5, 9.0, True), (0.3, None, True), (0.5, 9.0, False)])
def test_logit_std_kd_matches_torchdistill(alpha, beta, with_targets):
    z_s, z_t = leaves((8, 6), (8, 6), seed=2)
    targets = torch.randint(0, 6, (8,)) if with_targets else None
    params = dict(LOGIT_PATHS, temperature=2.0, alpha=alpha, beta=beta)
    assert_same(LogitStdKDLoss(**params), td.LogitStdKDLoss(**params), [z_s, z_t],
                lambda loss: loss(io(fc=z_s), io(fc=z_t), targets))


# --- SRD --------------------------------------------------------------------------------------------

SRD_PATHS = dict(student_feature_module_path="norm_layer", student_feature_module_io="output",
                 teacher_feature_module_path="norm_layer", teacher_feature_module_io="output",
                 student_linear_module_path="model.fc", student_linear_module_io="output",
                 teacher_linear_module_path="model.fc", teacher_linear_module_io="output")


def test_srd_loss_matches_torchdistill():
    f_s, f_t, z_s, z_t = leaves((8, 6), (8, 6), (8, 5), (8, 5), seed=3)
    params = dict(SRD_PATHS, exponent=4.0, temperature=2.0, reduction="batchmean")
    assert_same(SRDLoss(**params), td.SRDLoss(**params), [f_s, f_t, z_s, z_t],
                lambda loss: loss(io(norm_layer=f_s, model__fc=z_s), io(norm_layer=f_t, model__fc=z_t)))


class TinyNet(nn.Module):
    def __init__(self, channels=4, classes=5):
        super().__init__()
        self.layer4 = nn.Conv2d(3, channels, 3, padding=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(self.avgpool(self.layer4(x)).flatten(1))


def captured_norm_output(wrapper, x, run):
    """The norm_layer output a torchdistill wrapper produces after its secondary forward."""
    seen = {}
    handle = wrapper.norm_layer.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    feature = {}
    feature_handle = wrapper.model.layer4.register_forward_hook(lambda m, i, o: feature.setdefault("out", o))
    run(x)
    wrapper.secondary_forward({"model.layer4": {"output": feature["out"]}})
    handle.remove(), feature_handle.remove()
    return seen["out"]


@pytest.mark.parametrize("linear", [True, False])
def test_srd_model_wrapper_matches_torchdistill(linear):
    torch.manual_seed(4)
    params = dict(input_module={"path": "model.layer4", "io": "output"},
                  norm_kwargs={"num_features": 4, "eps": 1e-4, "affine": False},
                  linear_kwargs={"in_features": 4, "out_features": 4} if linear else None)
    side = ModelSide(TinyNet(), {"special": {"type": "SRDModelWrapper", "params": params},
                                 "forward_hook": {"output": ["norm_layer", "model.fc"]}}).double()
    ours = side.special
    assert isinstance(ours, SRDModelWrapper) and (ours.linear is not None) == linear
    theirs = td_wrapper.SRDModelWrapper(device=CPU, device_ids=None, distributed=False, student_model=TinyNet(),
                                        **params).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(6, 3, 4, 4, dtype=torch.float64)
    out, io_dict = side(x)
    expected = captured_norm_output(theirs, x, theirs)
    torch.testing.assert_close(io_dict["norm_layer"]["output"], expected, **TOL)
    torch.testing.assert_close(io_dict["model.fc"]["output"], theirs(x), **TOL)
    grads_ours = torch.autograd.grad(io_dict["norm_layer"]["output"].pow(3).sum(), list(ours.parameters()),
                                     allow_unused=True)
    grads_theirs = torch.autograd.grad(expected.pow(3).sum(), list(theirs.parameters()), allow_unused=True)
    assert sum(g is not None for g in grads_ours) == (4 if linear else 2)  # layer4 (+ linear)
    for g_ours, g_theirs in zip(grads_ours, grads_theirs):
        torch.testing.assert_close(g_ours, g_theirs, **TOL)


# --- SKD --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["paper", "code"])
def test_skd_instance_matches_torchdistill(mode):
    z_s, z_t = leaves((9, 5), (9, 5), seed=5)
    params = dict(LOGIT_PATHS, temperature=3.0, mode=mode)
    assert_same(SKDInstanceLoss(**params), td.SKDInstanceLoss(**params), [z_s, z_t],
                lambda loss: loss(io(fc=z_s), io(fc=z_t)))


@pytest.mark.parametrize("mode", ["paper", "code"])
def test_skd_direction_matches_torchdistill(mode):
    z_s, z_t = leaves((6, 10), (6, 10), seed=6)
    params = dict(LOGIT_PATHS, tikhonov=0.1, mode=mode)
    assert_same(SKDDirectionLoss(**params), td.SKDDirectionLoss(**params), [z_s, z_t],
                lambda loss: loss(io(fc=z_s), io(fc=z_t)))


def test_skd_refuses_unknown_mode():
    with pytest.raises(ConfigError, match="mode must be 'paper'"):
        SKDInstanceLoss(**LOGIT_PATHS, mode="papr")


# --- SSKD -------------------------------------------------------------------------------------------

def test_aux_sskd_matches_torchdistill():
    (embeddings,) = leaves((16, 6), seed=7)
    assert_same(AuxSSKDLoss(), td.AuxSSKDLoss(), [embeddings], lambda loss: loss({}, io(ss_module=embeddings)))


SSKD_PARAMS = dict(student_linear_module_path="model.fc", teacher_linear_module_path="model.fc",
                   student_ss_module_path="ss_module", teacher_ss_module_path="ss_module", kl_temp=4.0, ss_temp=0.5,
                   tf_temp=4.0, loss_weights=[1.0, 0.9, 10.0, 2.7], reduction="batchmean")


@pytest.mark.parametrize("seed, ss_ratio, tf_ratio", [(8, 0.75, 1.0), (9, 0.5, 0.5), (10, 0.0, 0.34)])
def test_sskd_matches_torchdistill(seed, ss_ratio, tf_ratio):
    z_s, z_t, e_s, e_t = leaves((24, 5), (24, 5), (24, 6), (24, 6), seed=seed)
    targets = torch.randint(0, 5, (6,))
    params = dict(SSKD_PARAMS, ss_ratio=ss_ratio, tf_ratio=tf_ratio)
    assert_same(SSKDLoss(**params), td.SSKDLoss(**params), [z_s, z_t, e_s, e_t],
                lambda loss: loss(io(model__fc=z_s, ss_module=e_s), io(model__fc=z_t, ss_module=e_t), targets))


def test_sskd_refuses_batches_without_four_views():
    (e,) = leaves((10, 6))
    with pytest.raises(ShapeMismatchError, match="not a multiple of 4"):
        AuxSSKDLoss()({}, io(ss_module=e))


SS_PARAMS = dict(input_module={"path": "model.avgpool", "io": "output"}, feat_dim=4)


def sskd_wrappers(is_teacher, ckpt):
    torch.manual_seed(11)
    ours = SSWrapper4SSKD(TinyNet(), is_teacher, **SS_PARAMS, ss_module_ckpt=ckpt)
    role = "teacher_model" if is_teacher else "student_model"
    theirs = td_wrapper.SSWrapper4SSKD(device=CPU, device_ids=None, distributed=False, **{role: TinyNet()},
                                       **SS_PARAMS, ss_module_ckpt=ckpt)
    return ours.double(), theirs.double()


def sskd_side(is_teacher, ckpt, **block):
    """A ModelSide wrapping TinyNet in SSWrapper4SSKD through the config path, hooking ss_module and model.fc."""
    torch.manual_seed(11)
    special = {"type": "SSWrapper4SSKD", "params": dict(SS_PARAMS, ss_module_ckpt=ckpt)}
    block = dict({"special": special, "forward_hook": {"output": ["ss_module", "model.fc"]}}, **block)
    return ModelSide(TinyNet(), block, is_teacher=is_teacher).double()


@pytest.mark.parametrize("is_teacher", [True, False])
def test_ss_wrapper_matches_torchdistill(is_teacher, tmp_path):
    _, theirs = sskd_wrappers(is_teacher, str(tmp_path / "absent.pt"))
    side = sskd_side(is_teacher, str(tmp_path / "absent.pt"), requires_grad=True)
    ours = side.special
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    views = torch.randn(3, 4, 3, 4, 4, dtype=torch.float64)  # 3 images x 4 views
    out, io_dict = side(views)
    flat = views.view(-1, 3, 4, 4)
    torch.testing.assert_close(out, theirs(flat), **TOL)
    pooled = {}
    handle = theirs.model.avgpool.register_forward_hook(lambda m, i, o: pooled.setdefault("out", o))
    theirs(flat)
    handle.remove()
    head = {}
    handle = theirs.ss_module.register_forward_hook(lambda m, i, o: head.setdefault("out", o))
    theirs.secondary_forward({"model.avgpool": {"output": pooled["out"]}})
    handle.remove()
    torch.testing.assert_close(io_dict["ss_module"]["output"], head["out"], **TOL)
    assert io_dict["ss_module"]["output"].shape == (12, 4)
    assert (out.grad_fn is None) == is_teacher  # the teacher's model runs without gradients


def test_ss_module_checkpoint_round_trip_and_torchdistill_file(tmp_path):
    path = str(tmp_path / "ss.pt")
    ours, theirs = sskd_wrappers(True, path)
    torch.save(theirs.ss_module.state_dict(), path)  # what torchdistill's post_epoch_process writes
    loaded = SSWrapper4SSKD(TinyNet(), True, input_module={"path": "model.avgpool"}, feat_dim=4, ss_module_ckpt=path)
    for a, b in zip(loaded.ss_module.state_dict().values(), theirs.ss_module.state_dict().values()):
        torch.testing.assert_close(a.double(), b)
    ours.post_epoch_process()
    again = SSWrapper4SSKD(TinyNet(), True, input_module={"path": "model.avgpool"}, feat_dim=4, ss_module_ckpt=path,
                           freezes_ss_module=True).double()
    assert all(torch.equal(a, b) for a, b in zip(again.ss_module.state_dict().values(),
                                                 ours.ss_module.state_dict().values()))
    assert not any(p.requires_grad for p in again.ss_module.parameters())


def test_sskd_first_stage_trains_only_the_teachers_head(tmp_path):
    """Stage 1: the teacher's backbone is frozen, AuxSSKDLoss trains its ss_module."""
    side = sskd_side(True, str(tmp_path / "absent.pt"), requires_grad=True, frozen_modules=["model"])
    teacher = side.special
    criterion = build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"aux_task": {
        "criterion": {"type": "AuxSSKDLoss", "params": {"module_path": "ss_module", "module_io": "output",
                                                        "reduction": "mean"}}, "factor": 1.0}}})
    out, io_dict = side(torch.randn(2, 4, 3, 4, 4, dtype=torch.float64))
    total, _ = criterion(out, out, {}, io_dict, None)
    total.backward()
    assert all(p.grad is not None for p in teacher.ss_module.parameters())
    assert all(p.grad is None for p in teacher.model.parameters())


class PILImages(torch.utils.data.Dataset):
    def __init__(self, transform):
        torch.manual_seed(12)
        self.images = [Image.fromarray((torch.rand(5, 5, 3) * 255).byte().numpy()) for _ in range(3)]
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index]
        return (self.transform(image) if self.transform else image), index


def test_sskd_dataset_wrapper_matches_torchdistill():
    from torchdistill.datasets.wrapper import SSKDDatasetWrapper as TDWrapper
    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.2] * 3)])
    ours, theirs = SSKDDatasetWrapper(PILImages(transform)), TDWrapper(PILImages(transform))
    for index in range(3):
        views, target, supp = ours[index]
        expected, expected_target, _ = theirs[index]
        assert views.shape == (4, 3, 5, 5) and target == expected_target and supp == {}
        torch.testing.assert_close(views, expected)
    tensor_views, _, _ = SSKDDatasetWrapper(PILImages(None))[0]  # PIL rotation == torch.rot90 of its tensor
    plain = PILImages(None).images[0]
    for k in range(4):
        torch.testing.assert_close(transforms.functional.pil_to_tensor(plain.rotate(90 * k, expand=True)),
                                   torch.rot90(transforms.functional.pil_to_tensor(plain), k, dims=(-2, -1)))
    assert tensor_views.shape == (4, 3, 5, 5)


# --- DKD against its formula ---------------------------------------------------------------------------

def dkd_by_hand(z_s, z_t, targets, alpha, beta, temperature):
    """Per sample: b = [p_y, 1 - p_y] (softened), TCKD = sum_k b^t_k log(b^t_k / b^s_k); NCKD = KL between the
    softmaxes of z / T - 1000 * onehot(y) (mdistiller's masking); both * T^2, averaged over the batch."""
    total = 0.0
    for i, y in enumerate(targets.tolist()):
        p_s, p_t = torch.softmax(z_s[i] / temperature, 0), torch.softmax(z_t[i] / temperature, 0)
        b_s = torch.stack([p_s[y], 1 - p_s[y]])
        b_t = torch.stack([p_t[y], 1 - p_t[y]])
        tckd = sum(b_t[k] * (torch.log(b_t[k]) - torch.log(b_s[k])) for k in range(2))
        mask = torch.zeros_like(z_s[i])
        mask[y] = 1000.0
        q_s, q_t = torch.softmax(z_s[i] / temperature - mask, 0), torch.softmax(z_t[i] / temperature - mask, 0)
        nckd = sum(q_t[k] * (torch.log(q_t[k]) - torch.log(q_s[k])) for k in range(len(q_t)) if q_t[k] > 0)
        total = total + temperature ** 2 * (alpha * tckd + beta * nckd)
    return total / len(targets)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_dkd_equals_formula_values_and_gradients(temperature):
    z_s, z_t = leaves((5, 7), (5, 7), seed=13)
    targets = torch.tensor([0, 3, 6, 3, 1])
    loss = DKDLoss(alpha=1.5, beta=8.0, temperature=temperature, warmup=None, ce_weight=0.0)
    ce = nn.functional.cross_entropy

    class ByHand:
        def __call__(self, s, t, y):
            return dkd_by_hand(s, t, y, 1.5, 8.0, temperature)

    assert_same(loss, ByHand(), [z_s], lambda fn: fn(z_s, z_t, targets))
    assert loss(z_s, z_t, targets).grad_fn is not None and torch.autograd.grad(
        loss(z_s, z_t, targets), z_t, allow_unused=True)[0] is None  # the teacher is detached, as mdistiller's
    with_ce = DKDLoss(alpha=1.5, beta=8.0, temperature=temperature, warmup=None, ce_weight=0.7)
    torch.testing.assert_close(with_ce(z_s, z_t, targets), loss(z_s, z_t, targets) + 0.7 * ce(z_s, targets), **TOL)


def test_dkd_decouples_classical_kd():
    """The paper's Eq. (4): KL(p^t || p^s) = TCKD + (1 - p^t_y) NCKD, NCKD being the KL of the renormalised
    non-target distributions (which the -1000 mask reproduces)."""
    z_s, z_t = leaves((1, 6), (1, 6), seed=14)
    y = torch.tensor([2])
    tckd = DKDLoss(alpha=1.0, beta=0.0, temperature=2.0, warmup=None, ce_weight=0.0)(z_s, z_t, y)
    nckd = DKDLoss(alpha=0.0, beta=1.0, temperature=2.0, warmup=None, ce_weight=0.0)(z_s, z_t, y)
    p_t = torch.softmax(z_t / 2.0, 1)
    kd = 4.0 * nn.functional.kl_div(torch.log_softmax(z_s / 2.0, 1), p_t, reduction="batchmean")
    torch.testing.assert_close(kd, tckd + (1 - p_t[0, 2]) * nckd, **TOL)
    keep = [0, 1, 3, 4, 5]
    renorm = nn.functional.kl_div(torch.log_softmax(z_s[:, keep] / 2.0, 1), torch.softmax(z_t[:, keep] / 2.0, 1),
                                  reduction="batchmean")
    torch.testing.assert_close(nckd, 4.0 * renorm, **TOL)


def test_dkd_warmup_follows_set_epoch():
    z_s, z_t = leaves((4, 5), (4, 5), seed=15)
    y = torch.tensor([0, 1, 2, 3])
    full = DKDLoss(warmup=None, ce_weight=0.0)(z_s, z_t, y)
    loss = DKDLoss(warmup=20, ce_weight=0.0)
    with pytest.warns(UserWarning, match="never told the epoch"):
        first = loss(z_s, z_t, y)
    torch.testing.assert_close(first, full / 20)
    for epoch, factor in [(0, 1 / 20), (9, 10 / 20), (19, 1.0), (50, 1.0)]:
        loss.set_epoch(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            torch.testing.assert_close(loss(z_s, z_t, y), factor * full)
    with pytest.raises(ConfigError, match="warmup"):
        DKDLoss(warmup=-1)


# --- config path, errors -------------------------------------------------------------------------------

def test_terms_build_through_config_and_read_hooked_logits():
    z_s, z_t, f_s, f_t = leaves((8, 5), (8, 5), (8, 6), (8, 6), seed=16)
    targets = torch.randint(0, 5, (8,))
    criterion = build_criterion({"type": "GeneralizedCustomLoss",
                                 "org_term": {"criterion": {"type": "DKDLoss", "params": {"warmup": 0}}, "factor": 1},
                                 "sub_terms": {
                                     "dist": {"criterion": {"type": "DISTLoss", "params": dict(LOGIT_PATHS, beta=2.0)},
                                              "factor": 2.0},
                                     "ls": {"criterion": {"type": "LogitStdKDLoss", "params": dict(
                                         LOGIT_PATHS, temperature=2.0, alpha=0.5, beta=9)}, "factor": 1.0},
                                     "ins": {"criterion": {"type": "SKDInstanceLoss", "params": LOGIT_PATHS},
                                             "factor": 1.0},
                                     "dir": {"criterion": {"type": "SKDDirectionLoss", "params": LOGIT_PATHS},
                                             "factor": 1.0},
                                     "srd": {"criterion": {"type": "SRDLoss", "params": dict(SRD_PATHS, exponent=4.0)},
                                             "factor": 1.0}}})
    student, teacher = io(fc=z_s, norm_layer=f_s, model__fc=z_s), io(fc=z_t, norm_layer=f_t, model__fc=z_t)
    total, terms = criterion(z_s, z_t, student, teacher, targets)
    assert set(terms) == {"org", "dist", "ls", "ins", "dir", "srd"}
    dist = td.DISTLoss(**LOGIT_PATHS, beta=2.0)(student, teacher)
    torch.testing.assert_close(terms["dist"], 2.0 * dist, **TOL)
    torch.testing.assert_close(total, sum(terms.values()).float(), **TOL)


@pytest.mark.parametrize("loss_type, params", [
    ("DISTLoss", dict(LOGIT_PATHS, tua=1.0)), ("LogitStdKDLoss", dict(LOGIT_PATHS, temperature=2, alpah=0.5)),
    ("SRDLoss", dict(SRD_PATHS, exponnent=4)), ("SKDDirectionLoss", dict(LOGIT_PATHS, tikonov=0.1)),
    ("SSKDLoss", dict(SSKD_PARAMS, ss_ratio=0.75, tf_ratio=1.0, kl_tmp=4)), ("DKDLoss", {"temprature": 4.0}),
    ("AuxSSKDLoss", {"module_pth": "ss_module"}),
    ("DISTPlusLoss", dict(LOGIT_PATHS, beta=1.0))])
def test_misspelt_params_are_refused(loss_type, params):
    block = {"criterion": {"type": loss_type, "params": params}, "factor": 1.0}
    key = "org_term" if loss_type == "DKDLoss" else "sub_terms"
    config = {"type": "GeneralizedCustomLoss", key: block if key == "org_term" else {"x": block}}
    with pytest.raises(ConfigError, match="rejected these params"):
        build_criterion(config)


def test_shape_and_hook_errors_explain_themselves():
    z_s, z_t = leaves((4, 5), (4, 7))
    with pytest.raises(ShapeMismatchError, match=r"shape \(4, 5\).*shape \(4, 7\)"):
        DISTLoss(**LOGIT_PATHS)(io(fc=z_s), io(fc=z_t))
    with pytest.raises(Exception, match="train.teacher.forward_hook.output"):
        DISTLoss(**LOGIT_PATHS)(io(fc=z_s), io(head=z_t))
    with pytest.raises(ConfigError, match="norm_kwargs does not fit BatchNorm1d"):
        SRDModelWrapper(TinyNet(), input_module={"path": "model.layer4"}, norm_kwargs={"num_feature": 4})


# --- head network distillation models ----------------------------------------------------------------

def head_layers(kind, bottleneck_channel):
    """The 0.x bottleneck heads, written out: (type, args) per layer, encoder first."""
    conv = lambda i, o, k, s, p: ("conv", (i, o, k, s, p))  # noqa: E731
    bn = lambda c: ("bn", c)  # noqa: E731
    pad = 0 if kind == "inception" else 1
    stem = [conv(3, 64, 7, 2, 3 * pad), bn(64), ("relu",), ("maxpool", (3, 2, pad)), bn(64), ("relu",),
            conv(64, bottleneck_channel, 2, 2, 1), bn(bottleneck_channel), ("relu",)]
    tails = {"resnet": [conv(bottleneck_channel, 512, 2, 1, 1), bn(512), ("relu",), conv(512, 512, 2, 1, 1), bn(512),
                        ("relu",), conv(512, 512, 2, 1, 0), bn(512), ("relu",), conv(512, 512, 2, 1, 0),
                        ("avgpool", (2, 1))],
             "densenet": [conv(bottleneck_channel, 512, 2, 1, 1), bn(512), ("relu",), conv(512, 512, 2, 1, 1), bn(512),
                          ("relu",), conv(512, 256, 2, 1, 0), bn(256), ("relu",), conv(256, 256, 2, 1, 0), bn(256),
                          ("relu",), conv(256, 256, 2, 1, 0), ("avgpool", (2, 2))],
             "inception": [conv(bottleneck_channel, 256, 2, 1, 1), bn(256), ("relu",), conv(256, 256, 2, 1, 0),
                           bn(256), ("relu",), conv(256, 192, 2, 1, 0), ("avgpool", (2, 1))]}
    return stem + tails[kind]


def describe(module):
    if isinstance(module, nn.Conv2d):
        return ("conv", (module.in_channels, module.out_channels, module.kernel_size[0], module.stride[0],
                         module.padding[0])) if module.bias is None else ("conv with bias",)
    if isinstance(module, nn.BatchNorm2d):
        return ("bn", module.num_features)
    if isinstance(module, nn.ReLU):
        return ("relu",)
    if isinstance(module, nn.MaxPool2d):
        return ("maxpool", (module.kernel_size, module.stride, module.padding))
    if isinstance(module, nn.AvgPool2d):
        return ("avgpool", (module.kernel_size, module.stride))
    return (type(module).__name__,)


HEAD_MODELS = [  # name, kind, torchvision builder, kept tail (in order), input size, the tail run by hand
    ("custom_resnet152", "resnet", "resnet152", ["layer3", "layer4", "avgpool", "flatten", "fc"], 32),
    ("custom_densenet169", "densenet", "densenet169", ["features", "relu", "adaptive_avgpool", "classifier"], 32),
    ("custom_densenet201", "densenet", "densenet201", ["features", "relu", "adaptive_avgpool", "classifier"], 32),
    ("custom_inception_v3", "inception", "inception_v3",
     ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a",
      "Mixed_7b", "Mixed_7c", "adaptive_avgpool", "dropout", "flatten", "fc"], 80),
]


@pytest.mark.parametrize("name, kind, builder, tail, size", HEAD_MODELS)
def test_head_network_models_have_the_0x_layout(name, kind, builder, tail, size):
    import torchvision.models as tvm

    from distillkit.models import head_network  # noqa: F401  (registers the models)
    from distillkit.registry import MODELS

    torch.manual_seed(17)
    extra = {"init_weights": False} if kind == "inception" else {}  # skip inception's slow truncated-normal init
    model = MODELS[name](bottleneck_channel=6, bottleneck_idx=7, num_classes=3, **extra).eval()
    bottleneck = model.features.bottleneck if kind == "densenet" else model.bottleneck
    layers = list(bottleneck.encoder) + list(bottleneck.decoder)
    assert len(bottleneck.encoder) == 7
    assert [describe(m) for m in layers] == head_layers(kind, 6)
    with torch.device("meta"):  # torchvision's model, for its names and shapes only
        org = getattr(tvm, builder)(num_classes=3, **extra)
    if kind == "densenet":
        blocks = ["denseblock3", "transition3", "denseblock4", "norm5"]
        assert [n for n, _ in model.named_children()] == tail
        assert [n for n, _ in model.features.named_children()] == ["bottleneck"] + blocks
        kept = {f"features.{n}.{k}": v for n in blocks for k, v in getattr(org.features, n).state_dict().items()}
        kept.update({f"classifier.{k}": v for k, v in org.classifier.state_dict().items()})
    else:
        assert [n for n, _ in model.named_children()] == ["bottleneck"] + tail
        kept = {f"{n}.{k}": v for n in tail if hasattr(org, n) for k, v in getattr(org, n).state_dict().items()}
    ours = {k: v for k, v in model.state_dict().items() if "bottleneck." not in k}
    assert set(ours) == set(kept) and set(kept) <= set(org.state_dict())  # torchvision's names for the tail
    assert all(ours[k].shape == kept[k].shape for k in kept)
    # The forward is the bottleneck, then the kept torchvision stages in their order.
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        z = bottleneck(x)
        if kind == "resnet":
            expected = model.fc(model.avgpool(model.layer4(model.layer3(z))).flatten(1))
        elif kind == "densenet":
            for block in blocks:
                z = getattr(model.features, block)(z)
            expected = model.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(z), 1), 1))
        else:
            for block in tail[:11]:
                z = getattr(model, block)(z)
            expected = model.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(z, 1), 1))
        out = model(x)
    assert out.shape == (1, 3)
    torch.testing.assert_close(out, expected)


def test_head_network_models_refuse_bottleneck_processors():
    from distillkit.models.head_network import custom_resnet152

    with pytest.raises(ConfigError, match="compressor"):
        custom_resnet152(compressor={"name": "Quantizer", "params": {"num_bits": 8}})
    with pytest.raises(ConfigError, match="bottleneck_idx"):
        custom_resnet152(bottleneck_idx=40)


def test_dist_formula_on_a_known_case():
    """Identical predictions: every Pearson correlation is 1 and DIST is 0; reversed ones give 2 per term."""
    z = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=torch.float64)
    assert DISTLoss(**LOGIT_PATHS)(io(fc=z), io(fc=z)).abs().item() < 1e-12
    assert math.isfinite(DISTLoss(**LOGIT_PATHS)(io(fc=z), io(fc=-z)).item())
