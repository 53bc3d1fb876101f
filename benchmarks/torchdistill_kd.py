"""The KD job in torchdistill 1.x (its DistillationBox and the training loop of its example script).

torchdistill is installed for the benchmark only (compare.py puts it on PYTHONPATH); it is
never a distillkit dependency.  Same models, data, optimizer and loss as hand_kd.py.
"""
import torch
import torchvision
from torch.utils.data import RandomSampler

from common import StepTimer, fake_dataset, parse_args, report, resident_batches


def train_config(args) -> dict:
    side = {"sequential": [], "forward_hook": {"input": [], "output": []}, "wrapper": None,
            "forward_proc": "forward_batch_only"}
    kd = {"student_module_path": ".", "student_module_io": "output", "teacher_module_path": ".",
          "teacher_module_io": "output", "temperature": 1.0, "alpha": 0.5, "reduction": "batchmean"}
    shuffle = {"generator": torch.Generator().manual_seed(args.seed)}  # the order hand_kd.py and distillkit use
    return {
        "num_epochs": 1,
        "train_data_loader": {"dataset_id": "train", "sampler": {"class_or_func": RandomSampler, "kwargs": shuffle},
                              "kwargs": {"batch_size": args.batch_size, "num_workers": args.workers,
                                         "pin_memory": args.device.startswith("cuda")}},
        "teacher": dict(side, requires_grad=False),
        "student": dict(side, requires_grad=True, frozen_modules=[]),
        "optimizer": {"key": "SGD", "kwargs": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}},
        "criterion": {"key": "WeightedSumLoss",
                      "kwargs": {"sub_terms": {"kd": {"criterion": {"key": "KDLoss", "kwargs": kd}, "weight": 1.0}}}},
    }


def main():
    from torchdistill.core.distillation import get_distillation_box

    args = parse_args(__doc__)
    device = torch.device(args.device)
    teacher = torchvision.models.resnet34(num_classes=1000).to(device).eval()  # frozen teacher in eval mode, as
    # hand_kd.py and distillkit run it (torchdistill leaves the mode to the caller)
    student = torchvision.models.resnet18(num_classes=1000).to(device)
    box = get_distillation_box(teacher, student, {"train": fake_dataset(args)}, train_config(args), device,
                               None, False, 1)
    timer = StepTimer(args)
    box.pre_epoch_process(epoch=0)
    data = box.train_data_loader if args.data == "pipeline" else \
        [(images, targets, {}) for images, targets in resident_batches(args)]
    for images, targets, supp_dict in data:
        images, targets = images.to(device), targets.to(device)
        loss = box.forward_process(images, targets, supp_dict)
        box.post_forward_process(loss=loss)
        loss_value = loss.item()  # the example script logs every step's loss
        timer.tick()
    report("torchdistill", args, timer, final_loss=loss_value, torchdistill=__import__("torchdistill").__version__)


if __name__ == "__main__":
    main()
