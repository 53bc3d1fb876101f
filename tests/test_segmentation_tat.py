"""The shipped TaT segmentation config (DeepLabV3-ResNet101 -> DeepLabV3-ResNet50, hooks on classifier.3): its total
loss on a batch equals L = CE + alpha * mean_b(beta * L_patch_group + gamma * L_anchor) worked out by hand from the
hooked tensors (patches cut by slicing, attention by explicit sums, pooling by block means)."""
import os

import pytest
import torch
import torch.nn.functional as F

from distillkit.config import load_config
from distillkit.engine.trainer import Trainer
from distillkit.experiment import build_experiment
from tests.conftest import REPO
from tests.seg_layouts import make_voc

SHIPPED = os.path.join(REPO, "configs", "pascal_voc2012", "tat", "deeplabv3_resnet50_from_deeplabv3_resnet101.yaml")


def small_machine(root):
    tiny = "[{type: CustomRandomCrop, params: {size: 64}}, {type: CustomToTensor}]"
    return [f"datasets.pascal_voc.splits.{s}.params.root={root}" for s in ("train", "val")] + [
        f"datasets.pascal_voc.splits.{s}.params.transforms_params={tiny}" for s in ("train", "val")] + [
        "train.train_data_loader.batch_size=2", "train.train_data_loader.num_workers=0",
        "train.val_data_loader.num_workers=0", "models.student_model.params.pretrained_backbone=False",
        "train.criterion.sub_terms.tat.criterion.params.anchor_grid=[4, 4]",
        "train.criterion.sub_terms.tat.criterion.params.alpha=0.7",
        "train.criterion.sub_terms.tat.criterion.params.beta=1.5",
        "train.criterion.sub_terms.tat.criterion.params.gamma=0.4",
        f"models.teacher_model.ckpt={root}/none.pt", f"models.student_model.ckpt={root}/student.pt"]


def attention(q, k, v):
    """(c, n) maps: out[:, i] = sum_j softmax_j(<q_i, k_j>) v[:, j]."""
    out = torch.zeros_like(v)
    for i in range(q.shape[1]):
        weights = torch.softmax(torch.stack([q[:, i] @ k[:, j] for j in range(k.shape[1])]), 0)
        out[:, i] = sum(weights[j] * v[:, j] for j in range(v.shape[1]))
    return out


def hand_patch_group(q, k, v, t, n, m, g):
    """One sample (c, H, W): patches in raster order, g consecutive ones stacked along channels, attention within."""
    ph, pw = q.shape[1] // n, q.shape[2] // m

    def groups(x):
        patches = [x[:, r * ph:(r + 1) * ph, s * pw:(s + 1) * pw] for r in range(n) for s in range(m)]
        return [torch.cat(patches[i:i + g]).flatten(1) for i in range(0, n * m, g)]

    errors = [(attention(a, b, c) - d) ** 2 for a, b, c, d in zip(groups(q), groups(k), groups(v), groups(t))]
    return torch.cat([e.flatten() for e in errors]).mean()


def hand_anchor(q, k, v, t, size):
    """One sample: each map averaged over equal blocks to size x size, then attention over all anchors."""
    def pool(x):
        c, h, w = x.shape
        return x.reshape(c, size, h // size, size, w // size).mean((2, 4)).flatten(1)

    return ((attention(pool(q), pool(k), pool(v)) - pool(t)) ** 2).mean()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_shipped_tat_segmentation_loss_equals_the_formula_by_hand(tmp_path):
    make_voc(str(tmp_path), count=2)
    experiment = build_experiment(load_config(SHIPPED, small_machine(tmp_path)))
    captured = {}
    experiment.student.model.register_forward_hook(lambda module, inputs, output: captured.update(out=output))
    trainer = Trainer(experiment)
    trainer.train_mode()
    images, targets, supp = next(iter(experiment.train_loader))
    assert images.shape == (2, 3, 64, 64) and (targets == 255).any()  # VOC's ignored border row
    loss, terms, student_io, teacher_io = trainer.forward(images, targets, supp)
    assert set(captured["out"]) == {"out"}  # the student has no aux head: CE is on `out` alone
    ce = F.cross_entropy(captured["out"]["out"].double(), targets, ignore_index=255)
    q, v = (student_io[f"embed_dict.{n}"]["output"].double() for n in ("query", "value"))
    t, k = teacher_io["model.classifier.3"]["output"].double(), teacher_io["embed_dict.key"]["output"].double()
    assert q.shape == t.shape == (2, 256, 8, 8) and torch.equal(k, t)  # the teacher's key is its feature itself
    per_sample = [1.5 * hand_patch_group(q[b], k[b], v[b], t[b], 4, 4, 4) + 0.4 * hand_anchor(q[b], k[b], v[b], t[b], 4)
                  for b in range(2)]
    expected = ce + 0.7 * torch.stack(per_sample).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert terms["tat"].item() == pytest.approx((expected - ce).item(), rel=1e-4)
