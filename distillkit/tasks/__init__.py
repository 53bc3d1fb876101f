"""Task families: classification (here), and the dense-prediction ones in their own subpackages.

:func:`resolve_task` picks the task of a config (see :mod:`distillkit.tasks.base`)."""
from __future__ import annotations

from ..registry import TASKS
from .base import Task
from .classification import ClassificationTask
from . import detection  # noqa: F401,E402  (registers the detection task)
from . import segmentation  # noqa: F401,E402  (registers the segmentation task)
from . import coco  # noqa: F401,E402  (torchdistill's coco_dataset / cocodetect, for both dense tasks)


def resolve_task(config, name=None) -> Task:
    """The task named by ``task:`` (``name``), else the first registered task that claims ``config``, else
    classification."""
    if name is not None:
        return TASKS.resolve(name, key_path="task")()
    for task_name, cls in TASKS.items():
        if task_name != "classification" and cls.claims(config):
            return cls()
    return ClassificationTask()


def summarize(result: dict) -> str:
    """The one-line summary of an evaluation result, by the task whose metrics it holds."""
    for _, cls in reversed(TASKS.items()):
        if cls.metrics and all(name in result for name in cls.metrics):
            return cls().summary(result)
    return ", ".join(f"{k} {v}" for k, v in result.items())


__all__ = ["Task", "ClassificationTask", "resolve_task", "summarize"]
