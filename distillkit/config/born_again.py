"""``train.born_again: {generations: G, first: {...}}`` written out as training stages (Furlanello et al., "Born-Again
Neural Networks", ICML 2018; the runtime side is :mod:`distillkit.multi.born_again`): stage 1 is generation 0, the
train block with ``first``'s keys over it (default ``criterion``: cross-entropy); stages 2..G+1 are the train block
as written, each taught by the previous stage's student (``teacher.from_student_of_stage``) from fresh weights
(``student.reinitialize``)."""
from __future__ import annotations

import re

from ..errors import ConfigError

STAGE_KEY = re.compile(r"^stage([1-9][0-9]*)$")
CROSS_ENTROPY = {"type": "GeneralizedCustomLoss",
                 "org_term": {"criterion": {"type": "CrossEntropyLoss", "params": {}}, "factor": 1.0}}
KEYS = ("generations", "first")


def born_again_stages(train: dict) -> dict:
    """``train`` with ``born_again`` replaced by the stages it stands for (see the module docstring)."""
    block = train["born_again"]
    where = "train.born_again"
    if not isinstance(block, dict):
        raise ConfigError(f"expected a mapping {{generations, first}}, found {block!r}.", key_path=where)
    for key in block:
        if key not in KEYS:
            raise ConfigError(f"unknown key {key!r}.", key_path=f"{where}.{key}", candidates=list(KEYS))
    generations = block.get("generations")
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        raise ConfigError(f"expected the number of born-again generations (an int >= 1), found {generations!r}.",
                          key_path=f"{where}.generations")
    if any(STAGE_KEY.match(str(k)) for k in train):
        raise ConfigError("train.born_again writes the stages itself; it cannot be combined with train.stageN "
                          "(write the stages out with teacher.from_student_of_stage instead).", key_path=where)
    first = block.get("first") or {}
    if not isinstance(first, dict):
        raise ConfigError(f"expected a mapping (keys of the train block for generation 0), found {first!r}.",
                          key_path=f"{where}.first")
    common = {k: v for k, v in train.items() if k != "born_again"}
    stages = {"stage1": {"criterion": CROSS_ENTROPY, **first}}
    for generation in range(1, generations + 1):
        stages[f"stage{generation + 1}"] = {
            "teacher": {**(common.get("teacher") or {}), "from_student_of_stage": generation},
            "student": {**(common.get("student") or {}), "reinitialize": True}}
    return {**common, **stages}
