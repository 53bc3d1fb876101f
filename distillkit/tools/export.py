"""``distillkit export CONFIG --ckpt PATH --out FILE``: the student alone, as weights for its own class."""
from __future__ import annotations

from ..config import load_config
from ..experiment import build_model_with_ckpt, student_block
from ..models.checkpoint import load_model_weights, save_atomic


def export_student(config_path: str, ckpt: str, out: str, overrides=()) -> str:
    """Load ``ckpt`` into the config's student model and write its state_dict to ``out`` (``{'model': ...}``);
    special modules, the teacher, optimizer state and EMA are left out."""
    config = load_config(config_path, overrides)
    key_path, block = student_block(config)
    block = dict(block, ckpt=None)
    model, _ = build_model_with_ckpt(block, key_path, "student")
    load_model_weights(model, ckpt, what="--ckpt checkpoint")
    save_atomic({"model": model.state_dict()}, out)
    return f"exported {type(model).__name__} ({block['name']}) weights from {ckpt} to {out}; load them with " \
           f"model.load_state_dict(torch.load({out!r}, weights_only=True)['model'])."
