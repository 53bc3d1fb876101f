"""TaT: MaskedFM against attention written out by hand, AttnEmbed's layers and paths, the large-map variants."""
import math

import pytest
import torch
from torch import nn

from distillkit.errors import ConfigError
from distillkit.losses import MaskedFM, ShapeMismatchError, TaTSegmentationLoss, UnhookedPathError
from distillkit.losses.tat_seg import anchor_point_loss, patch_group_loss
from distillkit.model_side import ModelSide
from distillkit.models.special import AttnEmbed


def attention_by_hand(q, k, v, heads):
    """out[b, h*d + e, i] = sum_j softmax_j(sum_e' q[b, h*d+e', i] k[b, h*d+e', j]) v[b, h*d+e, j], in loops."""
    b_size, c, height, width = q.shape
    d, n = c // heads, height * width
    qf, kf, vf = (x.reshape(b_size, c, n).tolist() for x in (q, k, v))
    out = torch.zeros(b_size, c, n, dtype=torch.float64)
    for b in range(b_size):
        for h in range(heads):
            channels = range(h * d, (h + 1) * d)  # head-major: head h owns channels h*d .. h*d+d-1
            for i in range(n):
                scores = [sum(qf[b][ch][i] * kf[b][ch][j] for ch in channels) for j in range(n)]
                top = max(scores)
                exps = [math.exp(s - top) for s in scores]
                weights = [e / sum(exps) for e in exps]
                for ch in channels:
                    out[b, ch, i] = sum(weights[j] * vf[b][ch][j] for j in range(n))
    return out.reshape(b_size, c, height, width)


def pair_io(q, k, v, t):
    student = {"s": {"output": v}, "q": {"output": q}, "v": {"output": v}}
    teacher = {"t": {"output": t}, "k": {"output": k}}
    return student, teacher


PAIRS = {"p": {"student": {"io": "output", "path": ["s", "q", "v"]},
               "teacher": {"io": "output", "path": ["t", "k"]}, "factor": 1}}


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_masked_fm_equals_attention_by_hand(heads):
    torch.manual_seed(heads)
    q, k, v, t = (torch.randn(2, 4, 2, 3, dtype=torch.float64) for _ in range(4))
    loss = MaskedFM(PAIRS, heads=heads)(*pair_io(q, k, v, t))
    expected = ((attention_by_hand(q, k, v, heads) - t) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_masked_fm_pair_factors_add_up():
    torch.manual_seed(0)
    q, k, v, t = (torch.randn(1, 2, 2, 2, dtype=torch.float64) for _ in range(4))
    pairs = {"a": dict(PAIRS["p"], factor=0.5), "b": dict(PAIRS["p"], factor=2.0)}
    single = MaskedFM(PAIRS)(*pair_io(q, k, v, t))
    assert MaskedFM(pairs)(*pair_io(q, k, v, t)).item() == pytest.approx(2.5 * single.item())


def test_masked_fm_errors_name_shapes_and_paths():
    q, k, v, t = (torch.randn(1, 6, 2, 2) for _ in range(4))
    with pytest.raises(ShapeMismatchError, match="do not divide into heads=4"):
        MaskedFM(PAIRS, heads=4)(*pair_io(q, k, v, t))
    with pytest.raises(ShapeMismatchError, match=r"\(1, 6, 3, 3\)"):
        MaskedFM(PAIRS)(*pair_io(q, torch.randn(1, 6, 3, 3), v, t))
    with pytest.raises(ShapeMismatchError, match="out_channels to 5"):
        MaskedFM(PAIRS)(*pair_io(q, k, v, torch.randn(1, 5, 2, 2)))
    student, teacher = pair_io(q, k, v, t)
    del teacher["k"]
    with pytest.raises(UnhookedPathError, match="train.teacher.forward_hook.output"):
        MaskedFM(PAIRS)(student, teacher)


class TwoStage(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.layer1 = nn.Conv2d(3, channels, 3, padding=1)
        self.head = nn.Linear(channels, 2)

    def forward(self, x):
        return self.head(self.layer1(x).mean((2, 3)))


def embed_block(names, channels=4, **extra):
    specs = {n: {"io": "output", "path": "model.layer1", "in_channels": channels, "out_channels": channels, **extra}
             for n in names}
    return {"type": "AttnEmbed", "params": {"embedings": specs}}


def test_attn_embed_layers_follow_the_released_code():
    student = AttnEmbed(TwoStage(4), False, embedings=embed_block(["query", "value"])["params"]["embedings"])
    for name in ("query", "value"):
        conv, bn = student.embed_dict[name]
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
        assert conv.stride == (1, 1) and conv.bias is None and isinstance(bn, nn.BatchNorm2d)
    teacher = AttnEmbed(TwoStage(4), True, embeddings=embed_block(["key"])["params"]["embedings"])
    assert isinstance(teacher.embed_dict["key"], nn.Identity)
    learnable = AttnEmbed(TwoStage(4), True, embeddings=embed_block(["key"], kernel_size=1, learnable=True)
                          ["params"]["embedings"])
    assert learnable.embed_dict["key"][0].kernel_size == (1, 1) and learnable.embed_dict["key"][0].padding == (0, 0)
    with pytest.raises(ConfigError, match="query or value"):
        AttnEmbed(TwoStage(4), False, embedings=embed_block(["key"])["params"]["embedings"])


def test_attn_embed_outputs_land_in_io_dict_and_teacher_backbone_is_frozen():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 5)
    student = ModelSide(TwoStage(4), {"special": embed_block(["query", "value"]),
                                      "forward_hook": {"output": ["model.layer1", "embed_dict.query",
                                                                  "embed_dict.value"]}})
    teacher = ModelSide(TwoStage(4), {"special": embed_block(["key"]), "requires_grad": True,
                                      "frozen_modules": ["model"],
                                      "forward_hook": {"output": ["model.layer1", "embed_dict.key"]}}, is_teacher=True)
    student.train()
    _, io = student(x)
    feature = io["model.layer1"]["output"]
    assert torch.allclose(io["embed_dict.query"]["output"], student.special.embed_dict["query"](feature))
    assert io["embed_dict.value"]["output"].shape == feature.shape
    _, teacher_io = teacher(x)
    assert torch.equal(teacher_io["embed_dict.key"]["output"], teacher_io["model.layer1"]["output"])
    assert not teacher.trainable and teacher_io["embed_dict.key"]["output"].grad_fn is None
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert {"root.embed_dict.query.0.weight", "root.embed_dict.value.1.weight", "root.model.layer1.weight"} <= trainable


def grouped_by_hand(x, n, m, g):
    """Patches of a (c, H, W) map in raster order, each run of g concatenated along channels."""
    c, height, width = x.shape
    ph, pw = height // n, width // m
    patches = [x[:, r * ph:(r + 1) * ph, s * pw:(s + 1) * pw] for r in range(n) for s in range(m)]
    return [torch.cat(patches[i:i + g], dim=0) for i in range(0, len(patches), g)]


def test_patch_group_equals_grouped_attention_by_hand():
    torch.manual_seed(1)
    q, k, v, t = (torch.randn(2, 2, 4, 6, dtype=torch.float64) for _ in range(4))
    per_sample = patch_group_loss(q, k, v, t, grid=(2, 3), group_size=2)
    for b in range(2):
        groups = [grouped_by_hand(x[b], 2, 3, 2) for x in (q, k, v, t)]
        errors = []
        for gq, gk, gv, gt in zip(*groups):
            out = attention_by_hand(gq[None], gk[None], gv[None], heads=1)[0]
            errors.append(((out - gt) ** 2).flatten())
        assert per_sample[b].item() == pytest.approx(torch.cat(errors).mean().item(), rel=1e-9)


def test_patch_group_refuses_uneven_splits():
    q = torch.randn(1, 2, 5, 6)
    with pytest.raises(ShapeMismatchError, match="5x6 map does not split into a 2x3"):
        patch_group_loss(q, q, q, q, grid=(2, 3), group_size=2)
    q = torch.randn(1, 2, 4, 6)
    with pytest.raises(ShapeMismatchError, match="groups of 4"):
        patch_group_loss(q, q, q, q, grid=(2, 3), group_size=4)


@pytest.mark.parametrize("size, bins", [(4, [(0, 2), (2, 4)]), (5, [(0, 3), (2, 5)])])
def test_anchor_point_pools_then_attends(size, bins):
    """Even maps pool into equal blocks; a 5-wide map into adaptive bins [0, 3) and [2, 5)."""
    torch.manual_seed(2)
    q, k, v, t = (torch.randn(2, 2, size, size, dtype=torch.float64) for _ in range(4))

    def pool(x):
        return torch.stack([torch.stack([x[:, :, r0:r1, c0:c1].mean((2, 3)) for c0, c1 in bins], -1)
                            for r0, r1 in bins], -2)

    pq, pk, pv, pt = (pool(x) for x in (q, k, v, t))
    expected = ((attention_by_hand(pq, pk, pv, 2) - pt) ** 2).flatten(1).mean(1)
    assert torch.allclose(anchor_point_loss(q, k, v, t, (2, 2), heads=2), expected)


def test_segmentation_loss_combines_per_sample_terms():
    torch.manual_seed(3)
    q, k, v, t = (torch.randn(3, 4, 4, 4, dtype=torch.float64) for _ in range(4))
    loss = TaTSegmentationLoss(PAIRS, patch_grid=(2, 2), group_size=2, anchor_grid=(2, 2), heads=2,
                               alpha=0.5, beta=2.0, gamma=3.0)(*pair_io(q, k, v, t))
    pg = patch_group_loss(q, k, v, t, (2, 2), 2)
    anchor = anchor_point_loss(q, k, v, t, (2, 2), 2)
    assert loss.item() == pytest.approx((0.5 * (2.0 * pg + 3.0 * anchor).mean()).item(), rel=1e-9)
