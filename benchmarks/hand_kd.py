"""The KD job written by hand in plain PyTorch: the reference distillkit's defaults must match.

Frozen ResNet-34 teacher (eval mode, no_grad), ResNet-18 student, SGD with momentum,
``0.5 * CE + 0.5 * T^2 * KL(p_t || p_s)`` with T = 1, batchmean.
"""
import torch
import torch.nn.functional as F
import torchvision

from common import StepTimer, fake_loader, parse_args, report


def main():
    args = parse_args(__doc__)
    device = torch.device(args.device)
    teacher = torchvision.models.resnet34(num_classes=1000).to(device).eval().requires_grad_(False)
    student = torchvision.models.resnet18(num_classes=1000).to(device).train()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader = fake_loader(args)
    timer = StepTimer(args)
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with torch.no_grad():
            teacher_logits = teacher(images)
        logits = student(images)
        kl = F.kl_div(F.log_softmax(logits, dim=1), F.softmax(teacher_logits, dim=1), reduction="batchmean")
        loss = 0.5 * F.cross_entropy(logits, targets) + 0.5 * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timer.tick()
    report("hand-written", args, timer, final_loss=loss.item())


if __name__ == "__main__":
    main()
