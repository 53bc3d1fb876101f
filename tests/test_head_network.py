"""custom_inception_v3 against the teacher layers that torchdistill 0.3.3's HND / GHND configs pair with it
(configs/sample/ilsvrc2012/single_stage/{hnd,ghnd}/custom_inception_v3_from_inception_v3.yaml).

Those configs run the teacher as ``sequential: [Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, +maxpool1,
Conv2d_3b_1x1, Conv2d_4a_3x3, +maxpool2]`` (``+maxpoolN`` = MaxPool2d(3, 2) adaptations) and pair the student's
``bottleneck`` output with the teacher's ``+maxpool2`` (HND), plus ``Mixed_5d``, ``Mixed_6e``, ``Mixed_7c`` on
both sides (GHND).  Side lengths, out = floor((s + 2p - k) / stride) + 1, worked out by hand:

    teacher stem            299 input   224 input
      Conv2d_1a_3x3 k3/2 p0    149         111
      Conv2d_2a_3x3 k3/1 p0    147         109
      Conv2d_2b_3x3 k3/1 p1    147         109
      +maxpool1     k3/2       73          54
      Conv2d_3b_1x1 k1         73          54
      Conv2d_4a_3x3 k3/1 p0    71          52
      +maxpool2     k3/2       35          25     (192 channels)

    student bottleneck
      conv          k7/2 p0    147         109
      maxpool       k3/2       73          54
      conv          k2/2 p1    37          28     (bottleneck_channel)
      conv          k2/1 p1    38          29
      conv          k2/1 p0    37          28
      conv          k2/1 p0    36          27
      avgpool       k2/1       35          26     (192 channels)

So the pair matches only at Inception's 299x299 input; the configs' 224x224 crops give 26 vs 25, in
torchdistill 0.3.3 as here (its head has the same layers).  After it, on both sides: Mixed_5b..5d keep 35
(Mixed_5d: 288 channels), Mixed_6a (k3/2) gives 17 (Mixed_6e: 768), Mixed_7a (k3/2) gives 8 (Mixed_7c: 2048).
"""
import pytest
import torch
import torchvision.models as tvm
from torch import nn

from distillkit.models.head_network import custom_inception_v3

TEACHER_STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "+maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                "+maxpool2"]
GHND_BLOCKS = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
               "Mixed_7a", "Mixed_7b", "Mixed_7c"]


def teacher_stem_output(teacher, x):
    for name in TEACHER_STEM:
        x = nn.MaxPool2d(kernel_size=3, stride=2)(x) if name.startswith("+") else getattr(teacher, name)(x)
    return x


def build(device="cpu"):
    torch.manual_seed(0)
    with torch.device(device):  # init_weights=False skips torchvision's slow truncated-normal init
        student = custom_inception_v3(bottleneck_channel=12, bottleneck_idx=7, num_classes=10, init_weights=False)
        teacher = tvm.inception_v3(num_classes=10, init_weights=False, aux_logits=True, transform_input=True)
    return student.eval(), teacher.eval()


@pytest.fixture(scope="module")
def models():
    return build()


def test_hnd_pair_has_equal_shapes_at_299(models):
    student, teacher = models
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        s, t = student.bottleneck(x), teacher_stem_output(teacher, x)
    assert tuple(s.shape) == tuple(t.shape) == (1, 192, 35, 35)  # HND: bottleneck vs +maxpool2


def test_ghnd_pairs_have_equal_shapes_at_299():
    """The Inception blocks after the head, on meta tensors: the same shape rules, none of the arithmetic."""
    student, teacher = build("meta")
    x = torch.empty(1, 3, 299, 299, device="meta")
    s, t = student.bottleneck(x), teacher_stem_output(teacher, x)
    pairs = {}
    for name in GHND_BLOCKS:
        s, t = getattr(student, name)(s), getattr(teacher, name)(t)
        pairs[name] = (tuple(s.shape), tuple(t.shape))
    assert pairs["Mixed_5d"] == ((1, 288, 35, 35),) * 2
    assert pairs["Mixed_6e"] == ((1, 768, 17, 17),) * 2
    assert pairs["Mixed_7c"] == ((1, 2048, 8, 8),) * 2
    assert tuple(student(x).shape) == (1, 10)


def test_at_224_the_head_gives_26_where_the_teacher_gives_25(models):
    """torchdistill 0.3.3's head does the same (see the table above): the 224x224 sample configs cannot pair
    them, so the fix is the config's crop size, not the head."""
    student, teacher = models
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert tuple(student.bottleneck(x).shape) == (1, 192, 26, 26)
        assert tuple(teacher_stem_output(teacher, x).shape) == (1, 192, 25, 25)


def test_bottleneck_layout_and_state_dict_keys_follow_torchdistill_0x():
    student, _ = build("meta")
    head = {k: tuple(v.shape) for k, v in student.state_dict().items() if k.startswith("bottleneck.")}
    convs = {k: v for k, v in head.items() if len(v) == 4}
    assert convs == {"bottleneck.encoder.0.weight": (64, 3, 7, 7), "bottleneck.encoder.6.weight": (12, 64, 2, 2),
                     "bottleneck.decoder.2.weight": (256, 12, 2, 2), "bottleneck.decoder.5.weight": (256, 256, 2, 2),
                     "bottleneck.decoder.8.weight": (192, 256, 2, 2)}
    bns = sorted(k.rsplit(".", 1)[0] for k in head if k.endswith("running_mean"))
    assert bns == ["bottleneck.decoder.0", "bottleneck.decoder.3", "bottleneck.decoder.6", "bottleneck.encoder.1",
                   "bottleneck.encoder.4"]
    assert not any(k.startswith("AuxLogits") for k in student.state_dict())
    assert [n for n, _ in student.named_children()] == ["bottleneck"] + GHND_BLOCKS + [
        "adaptive_avgpool", "dropout", "flatten", "fc"]
