"""How the org term reads the model outputs: torchdistill's ``criterion.func2extract_org_loss``.

Each extractor returns ``{key: loss}``; the org term is their sum (a per-key ``org_term.factor``
mapping weights them one by one):

- ``extract_simple_org_loss`` (the default): the org criterion on the output; a ``torch.nn`` loss
  (``per_output``) on each element of a tuple/list output (Inception's auxiliary logits), paired with the
  teacher's element when the teacher's output is a tuple/list too.  A registered org loss (KD, DeiT's,
  DKD) receives the output whole: it knows its own structure (DeiT's is ``(class, distillation)``).
- ``extract_simple_org_loss_dict``: the org criterion on each entry of a dict output
  (``{'out', 'aux'}`` of segmentation models), paired with the teacher's entry of the same key.
- ``extract_org_loss_dict``: the output is already a dict of losses (torchvision detection models
  in training mode), taken as it is.
"""
from __future__ import annotations

from typing import Callable, Dict


def extract_simple_org_loss(criterion, student_output, teacher_output, targets) -> Dict:
    if isinstance(student_output, (list, tuple)) and getattr(criterion, "per_output", False):
        paired = isinstance(teacher_output, (list, tuple)) and len(teacher_output) == len(student_output)
        return {index: criterion(output, teacher_output[index] if paired else teacher_output, targets)
                for index, output in enumerate(student_output)}
    return {0: criterion(student_output, teacher_output, targets)}


def extract_simple_org_loss_dict(criterion, student_output, teacher_output, targets) -> Dict:
    if not isinstance(student_output, dict):
        return extract_simple_org_loss(criterion, student_output, teacher_output, targets)
    teacher = teacher_output if isinstance(teacher_output, dict) else {}
    return {key: criterion(output, teacher.get(key, teacher_output), targets) for key, output in student_output.items()}


def extract_org_loss_dict(criterion, student_output, teacher_output, targets) -> Dict:
    return dict(student_output) if isinstance(student_output, dict) else {}


ORG_LOSS_EXTRACTORS: Dict[str, Callable] = {f.__name__: f for f in (
    extract_simple_org_loss, extract_simple_org_loss_dict, extract_org_loss_dict)}
