"""The task abstraction: a config picks its task by `task:` or by what its models say; a task's metrics name
the metrics.jsonl columns and the default best metric."""
import pytest

from distillkit.errors import ConfigError
from distillkit.registry import TASKS, register_task
from distillkit.tasks import ClassificationTask, Task, resolve_task, summarize


def test_classification_is_the_default_and_named_tasks_resolve():
    assert isinstance(resolve_task({"models": {}}), ClassificationTask)
    assert isinstance(resolve_task({"models": {}}, "classification"), ClassificationTask)


def test_a_misspelt_task_names_the_key_and_the_nearest_task():
    with pytest.raises(ConfigError) as caught:
        resolve_task({}, "clasification")
    assert caught.value.key_path == "task" and "classification" in str(caught.value)


def test_a_registered_task_claims_the_configs_it_recognises():
    @register_task("toy_counting")
    class ToyTask(Task):
        metrics = ("count_error",)
        primary = "count_error"

        @classmethod
        def claims(cls, config):
            return config.get("models", {}).get("model", {}).get("name") == "toy_counter"

    try:
        assert isinstance(resolve_task({"models": {"model": {"name": "toy_counter"}}}), ToyTask)
        assert isinstance(resolve_task({"models": {"model": {"name": "resnet18"}}}), ClassificationTask)
        assert summarize({"count_error": 0.5}) == "count_error 0.5"
    finally:
        TASKS._table.pop("toy_counting")


def test_classification_summary_reads_as_before():
    result = {"top1": 97.5, "top5": 100.0, "count": 40}
    assert summarize(result) == "top-1 97.50% top-5 100.00% on 40 images"
