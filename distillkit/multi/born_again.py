"""Born-again networks (Furlanello et al., "Born-Again Neural Networks", ICML 2018) as training stages.

Generation 0 is trained on the labels; generation k+1, a student of the same architecture started from fresh
weights, learns from a frozen copy of generation k (KD, or the CE + KL of the criterion).  Two ways to say it:

- explicit stages: ``train.stageN.teacher.from_student_of_stage: k`` (the teacher of stage N is the final
  student of stage k < N, frozen) and ``train.stageN.student.reinitialize: true`` (fresh weights);
- ``train.born_again: {generations: G, first: {...}}``: expanded here into G + 1 such stages.  Stage 1 is
  generation 0: the train block with ``first``'s keys over it (default ``criterion``: cross-entropy); stages
  2..G+1 are the train block as written, each taught by the previous stage's student.

The final student of each stage is kept (``SharedParts.generations``) and travels in run checkpoints, so a run
resumed in any generation gets the same teacher; fresh weights are drawn from a generator seeded by the run's
seed and the stage, so they are the same in a resumed run too.
"""
from __future__ import annotations

import copy
import logging
from typing import Optional

import torch

from ..config.born_again import CROSS_ENTROPY, born_again_stages  # noqa: F401  (re-exported)
from ..errors import ConfigError, DistillkitError
from ..models import build_model

logger = logging.getLogger(__name__)

def generation_teacher(shared, train, stage: int, for_training: bool):
    """The teacher model of a stage whose teacher is ``from_student_of_stage: k``: a frozen copy of the student
    model with stage k's final weights (None when the stage names no such teacher)."""
    source = train.teacher.from_student_of_stage
    if source is None:
        return None
    where = f"{train.teacher.key_path}.from_student_of_stage"
    if source > stage:
        raise ConfigError(f"stage {stage + 1} cannot learn from the student of stage {source}: only an earlier "
                          f"stage (1..{stage}) has finished by then.", key_path=where)
    if isinstance(shared.student_model, dict):
        raise ConfigError("from_student_of_stage copies the one student (models.student_model); it does not go "
                          "with models.students.", key_path=where)
    teacher = copy.deepcopy(shared.student_model)
    weights = shared.generations.get(source - 1)
    if weights is not None:
        teacher.load_state_dict(weights)
    elif for_training:
        raise DistillkitError(f"{where}: the final weights of stage {source} are not known in this run (it was "
                              f"neither trained here nor held by the resumed checkpoint); train from stage 1, or "
                              f"resume from a checkpoint of this run.")
    else:
        logger.warning("%s: stage %d has not been trained in this process; its teacher copy keeps the student's "
                       "current weights.", where, source)
    return teacher.requires_grad_(False)


def reinitialize(model: torch.nn.Module, block: dict, key_path: str, seed: int, stage: int) -> None:
    """Fresh weights for ``model`` (a new build of its block), the same for the same seed and stage."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000 + stage)
        fresh = build_model(block, key_path)
    model.load_state_dict(fresh.state_dict())
    logger.info("stage %d: the student starts from fresh weights (born-again generation)", stage + 1)


def record_generation(shared, experiment) -> None:
    """Keep the final student of ``experiment``'s stage when a later stage learns from it."""
    wanted = {s.teacher.from_student_of_stage for s in shared.run.stages}
    if experiment.stage + 1 in wanted:
        shared.generations[experiment.stage] = {k: v.detach().clone()
                                                for k, v in experiment.student.model.state_dict().items()}


def restore_generations(shared, state: Optional[dict], first_stage: int) -> None:
    """The generations a resume checkpoint holds; a checkpoint that ends a stage adds that stage's student."""
    if state is None:
        return
    shared.generations.update(state.get("generations") or {})
    stage = int(state.get("stage", 0))
    if first_stage > stage and "step_in_epoch" not in state:
        shared.generations.setdefault(stage, state["model"])
