"""DeiT: the distillation loss by hand in every mode, the distillable ViT's tokens and heads, timm's distilled ViTs."""
import json
import math

import pytest
import torch

from distillkit.errors import ConfigError, ShapeMismatchError
from distillkit.losses import DeiTDistillationLoss
from distillkit.models import build_model
from distillkit.models.distillable_vit import DistillableViT

CLS = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]
DIST = [[1.0, 1.0, 0.0], [-1.0, 0.0, 2.0]]
TEACHER = [[0.0, 3.0, 1.0], [1.0, 0.0, 0.5]]
Y = [0, 1]


def log_softmax(row, tau=1.0):
    m = max(v / tau for v in row)
    log_z = m + math.log(sum(math.exp(v / tau - m) for v in row))
    return [v / tau - log_z for v in row]


def ce(row, label, eps=0.0):
    lp = log_softmax(row)
    return -(1 - eps) * lp[label] - eps / len(row) * sum(lp)


def kl_sum(dist_row, teacher_row, tau):
    lt, ls = log_softmax(teacher_row, tau), log_softmax(dist_row, tau)
    return sum(math.exp(a) * (a - b) for a, b in zip(lt, ls))


def run(loss, targets=None):
    return loss((torch.tensor(CLS), torch.tensor(DIST)), torch.tensor(TEACHER),
                torch.tensor(Y) if targets is None else targets).item()


@pytest.mark.parametrize("kl_reduction, divisor", [("mean", 6), ("batchmean", 2)])
def test_soft_distillation_both_reductions(kl_reduction, divisor):
    alpha, tau = 0.3, 2.0
    base = sum(ce(r, y) for r, y in zip(CLS, Y)) / 2
    distill = sum(kl_sum(d, t, tau) for d, t in zip(DIST, TEACHER)) * tau ** 2 / divisor
    value = run(DeiTDistillationLoss("soft", alpha, tau, kl_reduction))
    assert value == pytest.approx((1 - alpha) * base + alpha * distill, rel=1e-6)


def test_hard_distillation_uses_teacher_argmax_and_label_smoothing():
    alpha = 0.5
    base = sum(ce(r, y, eps=0.1) for r, y in zip(CLS, Y)) / 2
    teacher_labels = [1, 0]  # argmax of each TEACHER row
    distill = sum(ce(d, t) for d, t in zip(DIST, teacher_labels)) / 2
    value = run(DeiTDistillationLoss("hard", alpha, label_smoothing=0.1))
    assert value == pytest.approx((1 - alpha) * base + alpha * distill, rel=1e-6)


def test_none_is_cross_entropy_of_the_class_head_and_soft_targets_work():
    assert run(DeiTDistillationLoss("none")) == pytest.approx(sum(ce(r, y) for r, y in zip(CLS, Y)) / 2, rel=1e-6)
    soft = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.4, 0.6]])  # e.g. Mixup targets
    expected_base = -sum(sum(p * lp for p, lp in zip(s, log_softmax(r))) for s, r in zip(soft.tolist(), CLS)) / 2
    distill = sum(ce(d, t) for d, t in zip(DIST, [1, 0])) / 2
    value = run(DeiTDistillationLoss("hard", 0.25), targets=soft)
    assert value == pytest.approx(0.75 * expected_base + 0.25 * distill, rel=1e-6)


def test_bad_loss_settings_and_single_output():
    with pytest.raises(ConfigError, match="distillation_type"):
        DeiTDistillationLoss("medium")
    with pytest.raises(ConfigError, match="kl_reduction"):
        DeiTDistillationLoss("soft", kl_reduction="sum")
    with pytest.raises(ShapeMismatchError, match="distillation_logits"):
        DeiTDistillationLoss("soft")(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor(Y))


def test_distillable_vit_token_layout():
    torch.manual_seed(0)
    vit = DistillableViT(image_size=8, patch_size=4, num_classes=5, dim=6, depth=1, heads=2, dim_head=3, mlp_dim=8)
    img = torch.randn(2, 3, 8, 8)
    tokens = vit.tokens(img)
    assert tokens.shape == (2, 2 + 4, 6)
    pos = vit.pos_embedding[0]
    assert torch.allclose(tokens[:, 0], vit.cls_token[0, 0] + pos[0])
    assert torch.allclose(tokens[:, 1], vit.dist_token[0, 0] + pos[1])
    linear = vit.to_patch_embedding[1]
    for index, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # raster order, (p1 p2 c) flattening
        patch = img[:, :, row * 4:(row + 1) * 4, col * 4:(col + 1) * 4].permute(0, 2, 3, 1).reshape(2, -1)
        assert torch.allclose(tokens[:, 2 + index], linear(patch) + pos[2 + index], atol=1e-6)


def test_distillable_vit_heads_and_eval_outputs():
    torch.manual_seed(1)
    vit = DistillableViT(image_size=8, patch_size=4, num_classes=5, dim=8, depth=2, heads=2, dim_head=4, mlp_dim=8)
    img = torch.randn(3, 3, 8, 8)
    vit.train()
    cls, dist = vit(img)
    assert cls.shape == dist.shape == (3, 5) and not torch.allclose(cls, dist)
    vit.eval()
    assert torch.allclose(vit(img), (cls + dist) / 2, atol=1e-6)
    for mode, expected in (("class", cls), ("distill", dist)):
        vit.eval_output = mode
        assert torch.allclose(vit(img), expected, atol=1e-6)


def test_timm_distilled_vit_is_switched_to_distilled_training():
    torch.manual_seed(2)
    params = {"img_size": 16, "patch_size": 8, "num_classes": 4, "depth": 2, "embed_dim": 32, "num_heads": 2}
    model = build_model({"name": "timm:deit_tiny_distilled_patch16_224", "params": params}, "models.student_model")
    img = torch.randn(2, 3, 16, 16)
    model.train()
    cls, dist = model(img)
    model.eval()
    assert torch.allclose(model(img), (cls + dist) / 2, atol=1e-6)
    distill_only = build_model({"name": "timm:deit_tiny_distilled_patch16_224",
                                "params": dict(params, eval_output="distill")}, "models.student_model")
    distill_only.load_state_dict(model.state_dict())
    distill_only.eval()
    assert torch.allclose(distill_only(img), dist, atol=1e-6)


DEIT_RUN = """
datasets:
  digits:
    type: 'Digits'
    splits:
      train: {dataset_id: 'd/train', params: {split: 'train', image_size: 32, val_fraction: 0.9,
              transform_params: [{type: 'create_transform', params: {input_size: 32, is_training: True,
              auto_augment: 'rand-m9-mstd0.5-inc1', re_prob: 0.25, mean: [0.2, 0.2, 0.2], std: [0.35, 0.35, 0.35]}}]}}
      val: {dataset_id: 'd/val', params: {split: 'val', image_size: 32, val_fraction: 0.9,
            transform_params: [{type: 'ToTensor'}]}}
models:
  teacher_model: {name: 'cifar_resnet8', params: {num_classes: 10}}
  student_model:
    name: 'timm:deit_tiny_distilled_patch16_224'
    params: {img_size: 32, num_classes: 10, depth: 2}   # timm's DeiT-Ti with 2 of its 12 blocks, at 32 px: 2 x 2
                                                        # patches of 16
train:
  num_epochs: 2
  train_data_loader: {dataset_id: 'd/train', batch_size: 16, drop_last: True, repeated_aug: 2}
  val_data_loader: {dataset_id: 'd/val', batch_size: 400}
  mixup: {mixup_alpha: 0.8, cutmix_alpha: 1.0, label_smoothing: 0.1, num_classes: 10}
  model_ema: {decay: 0.9}
  optimizer: {type: 'AdamW', params: {lr: 0.001, weight_decay: 0.05}}
  scheduler: {type: 'timm:cosine', params: {warmup_epochs: 1, warmup_lr: 1.0e-5, min_lr: 1.0e-6}}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {criterion: {type: 'DeiTDistillationLoss', params: {distillation_type: 'soft', alpha: 0.5, tau: 3.0}},
               factor: 1.0}
"""


def test_tiny_deit_run_with_the_recipe(in_tmp, write_yaml):
    from distillkit.runner import train_from_config

    results = train_from_config(write_yaml(DEIT_RUN), run_dir="run", device="cpu")
    rows = [json.loads(line) for line in open("run/metrics.jsonl")]
    # epoch 0: the warmup lr; epoch 1: timm's cosine over 2 epochs at t=1, min + (base - min) * (1 + cos(pi/2)) / 2
    assert rows[0]["lr"] == pytest.approx(1e-5)
    assert rows[1]["lr"] == pytest.approx(1e-6 + (0.001 - 1e-6) * (1 + math.cos(math.pi / 2)) / 2)
    assert all({"val_top1_ema", "val_top5_ema"} <= set(r) for r in rows)
    best = torch.load("run/checkpoints/best.pt", weights_only=True)
    assert "model_ema" in best and "dist_token" in best["model"]
    assert results["student"]["count"] == round(1797 * 0.9)


def test_rand_augment_posterize_at_full_magnitude_gives_black_image():
    """Magnitude 10 with 'inc1' keeps 0 bits: black, as on Pillow < 13, instead of a ValueError."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform

    from distillkit.data.timm_compat import patch_timm_posterize

    patch_timm_posterize()
    image = Image.new("RGB", (8, 8), (200, 100, 50))
    op = rand_augment_transform("rand-n1-m10-mstd0-inc1", {}, transforms=["PosterizeIncreasing"])
    op.ops[0].prob = 1.0
    assert op(image).getextrema() == ((0, 0), (0, 0), (0, 0))
