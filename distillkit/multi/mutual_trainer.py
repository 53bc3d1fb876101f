"""The Trainer of deep mutual learning: the same loop, evaluated and saved per student (multi/mutual.py)."""
from __future__ import annotations

import logging
from typing import Dict

from ..engine.trainer import Trainer
from ..models.checkpoint import save_atomic
from ..engine.evaluate import evaluate_side

logger = logging.getLogger(__name__)


class MutualTrainer(Trainer):
    """metrics.jsonl gets the task's metrics per student (``val_top1/<name>``, ``val_top5/<name>``) beside their
    means (``val_top1``: the mean over students, the default best metric of the run); each student's best weights by
    its own primary metric (``val_top1/<name>``) go to its ``ckpt`` / ``dst_ckpt`` (an earlier run's best there is
    kept unless beaten)."""

    def __init__(self, experiment, *args, **kwargs):
        super().__init__(experiment, *args, **kwargs)
        self.last_row: Dict[str, float] = {}
        self._last_students = None

    def evaluate(self, loader, side: str = "student") -> Dict[str, float]:
        """Each student's metrics (``students``) and their means (``top1``, ``top5`` for classification)."""
        per_student = {name: evaluate_side(member, loader, self.ctx, self.exp.amp, self.exp.task)
                       for name, member in self.exp.student.members.items()}
        self._last_students = per_student
        means = {metric: sum(r[metric] for r in per_student.values()) / len(per_student)
                 for metric in self.exp.task.metrics}
        return {**means, "count": next(iter(per_student.values()))["count"], "students": per_student}

    def epoch_metrics(self, epoch: int) -> Dict[str, float]:
        self._last_students = None
        row = super().epoch_metrics(epoch)
        if self.exp.val_loader is not None and self._last_students is not None:
            for name, result in self._last_students.items():
                row.update({f"val_{metric}/{name}": result[metric] for metric in self.exp.task.metrics})
        self.last_row = row
        return row

    def test(self) -> Dict[str, float]:
        result = super().test()
        for name, student in result.get("students", {}).items():
            logger.info("test, student %s: %s", name, self.exp.task.summary(student))
        return result

    def save(self, epoch: int, is_best: bool) -> None:
        super().save(epoch, is_best)
        if not self.ctx.is_main:
            return
        for name, best in self.exp.student_bests.items():
            value = self.last_row.get(f"val_{self.exp.task.primary}/{name}")
            path = self.exp.student_ckpts.get(name)
            if path and value is not None and best.update(value):
                save_atomic({"model": self.exp.student.members[name].model.state_dict(),
                             "best_metric": best.state_dict(), "best_value": best.value, "epoch": epoch}, path)
