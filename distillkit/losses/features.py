"""Reading features out of an io_dict, with errors that name the missing path."""
from __future__ import annotations

from ..errors import ConfigError, ShapeMismatchError, UnhookedPathError, nearest_names


SELF_PATH = "."  # a model's own output in an io_dict (torchdistill 1.x puts it there on every forward)


def select_features(io_dict: dict, path, io: str = "output", side: str = "student", reader: str = "loss"):
    """``io_dict[path][io]``; a list of paths gives the list of their tensors."""
    if isinstance(path, (list, tuple)):
        return [select_features(io_dict, p, io, side, reader) for p in path]
    slot = io_dict.get(path)
    if slot is None or io not in slot:
        hooked = [f"{p}:{k}" for p, v in io_dict.items() for k in v]
        raise UnhookedPathError(
            f"{reader} reads the {side}'s {io} of {path!r}, but no forward hook captured it. Add {path!r} to "
            f"train.{side}.forward_hook.{io}. Captured on the {side}: {', '.join(sorted(hooked)) or 'nothing'}."
            + (f" Nearest: {', '.join(close)}." if (close := nearest_names(path, list(io_dict))) else ""))
    return slot[io]


def check_logit_pair(student_logits, teacher_logits, loss: str) -> None:
    """A loss comparing student and teacher logits needs a teacher and the same number of classes."""
    if teacher_logits is None:
        raise ConfigError(f"{loss} needs the teacher's output: declare models.teacher_model, or train without it "
                          f"(org_term CrossEntropyLoss).", key_path="models.teacher_model")
    if student_logits.shape != teacher_logits.shape:
        raise ShapeMismatchError(
            f"{loss} compares the student's output {tuple(student_logits.shape)} with the teacher's "
            f"{tuple(teacher_logits.shape)}: the student predicts {student_logits.shape[-1]} classes and the teacher "
            f"{teacher_logits.shape[-1]}. Set models.student_model.params.num_classes and "
            f"models.teacher_model.params.num_classes to the number of classes of the dataset (a teacher trained on "
            f"other classes cannot be distilled from as it is).")
