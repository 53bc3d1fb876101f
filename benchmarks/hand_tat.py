"""The TaT job written by hand in plain PyTorch (configs/ilsvrc2012/tat/resnet18_from_resnet34_attn.yaml).

Forward hooks capture layer4 of the frozen ResNet-34 teacher (the key and the target) and of
the ResNet-18 student; the student's query and value embeddings are 3x3 conv + BN; one head:
``out_i = sum_j softmax_j(<q_i, k_j>) v_j``; loss ``0.1 * CE + 0.2 * MSE(out, teacher layer4)``;
AdamW over the student and its embeddings.
"""
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from common import hand_written_loop, parse_args


def embed(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))


def capture(module: nn.Module, store: dict, name: str) -> None:
    module.register_forward_hook(lambda _m, _i, output: store.__setitem__(name, output))


def main():
    args = parse_args(__doc__)
    device = torch.device(args.device)
    teacher = torchvision.models.resnet34(num_classes=1000).to(device).eval().requires_grad_(False)
    student = torchvision.models.resnet18(num_classes=1000).to(device).train()
    query, value = embed(512).to(device).train(), embed(512).to(device).train()
    features = {}
    capture(teacher.layer4, features, "teacher")
    capture(student.layer4, features, "student")
    parameters = list(student.parameters()) + list(query.parameters()) + list(value.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=0.0016, weight_decay=0.0005)

    def compute_loss(images, targets):
        with torch.no_grad():
            teacher(images)
        logits = student(images)
        target = features["teacher"]
        q = query(features["student"]).flatten(2).transpose(1, 2)   # (b, hw, c)
        k = target.flatten(2)                                        # (b, c, hw)
        v = value(features["student"]).flatten(2).transpose(1, 2)
        out = torch.bmm(torch.bmm(q, k).softmax(dim=-1), v).transpose(1, 2).reshape(target.shape)
        return 0.1 * F.cross_entropy(logits, targets) + 0.2 * F.mse_loss(out, target)

    hand_written_loop(args, optimizer, compute_loss)


if __name__ == "__main__":
    main()
