"""The KD job written by hand in plain PyTorch: the reference distillkit's defaults must match.

Frozen ResNet-34 teacher (eval mode, no_grad), ResNet-18 student, SGD with momentum,
``0.5 * CE + 0.5 * T^2 * KL(p_t || p_s)`` with T = 1, batchmean.
"""
import torch
import torch.nn.functional as F
import torchvision

from common import hand_written_loop, parse_args


def main():
    args = parse_args(__doc__)
    device = torch.device(args.device)
    teacher = torchvision.models.resnet34(num_classes=1000).to(device).eval().requires_grad_(False)
    student = torchvision.models.resnet18(num_classes=1000).to(device).train()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def compute_loss(images, targets):
        with torch.no_grad():
            teacher_logits = teacher(images)
        logits = student(images)
        kl = F.kl_div(F.log_softmax(logits, dim=1), F.softmax(teacher_logits, dim=1), reduction="batchmean")
        return 0.5 * F.cross_entropy(logits, targets) + 0.5 * kl

    hand_written_loop(args, optimizer, compute_loss)


if __name__ == "__main__":
    main()
