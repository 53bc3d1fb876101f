"""The config schema, and the typed settings it parses into.

Each block of the config that the engine reads (``train``, a loader, a side, ...) is a
:class:`Section`: a dataclass whose fields *are* the schema.  A field's metadata says its
kind (``str``, ``int``, ``number``, ``bool``, ``list``, ``mapping``, ``any`` or a nested
Section), whether it is required, its default and its smallest valid value.
``Section.parse(block, key_path)`` checks the block and returns the typed object, so
consumers read ``settings.train.num_epochs`` instead of ``dict.get`` with a default of
their own.  A new key is one field here plus its consumer.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .born_again import STAGE_KEY, born_again_stages
from ..errors import ConfigError, nearest_names
from .paths import join_path

logger = logging.getLogger(__name__)

_TYPES = {"mapping": (dict,), "list": (list, tuple), "str": (str,), "bool": (bool,), "int": (int,),
          "number": (int, float)}
MAX_INT_DIGITS = 18  # larger integers are typos (a 5,000-digit batch size), refused before anything is built


def setting(kind, default=None, *, required: bool = False, min=None, factory=None, nullable: bool = False):
    """A schema field: ``kind`` as above, ``default`` when absent, ``min`` the smallest valid value;
    ``nullable``: a ``null`` written in the file means None rather than the default."""
    metadata = {"kind": kind, "required": required, "min": min, "nullable": nullable}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    if isinstance(kind, type) and issubclass(kind, Section) and default is None and not required:
        return field(default=None, metadata=metadata)
    return field(default=default, metadata=metadata)


def _kind_label(kind) -> str:
    return "mapping" if isinstance(kind, type) else kind


def _check_value(value, kind, minimum, key_path: str):
    label = _kind_label(kind)
    if label == "any":
        return value
    if isinstance(value, bool) and label in ("int", "number") or not isinstance(value, _TYPES[label]):
        shown = repr(value) if len(repr(value)) < 80 else f"{repr(value)[:60]}... ({len(repr(value))} characters)"
        raise ConfigError(f"expected a {label}, found {type(value).__name__} {shown}.", key_path=key_path)
    if label in ("int", "number"):
        if isinstance(value, int) and abs(value) >= 10 ** MAX_INT_DIGITS:
            raise ConfigError(f"expected a {label} of at most {MAX_INT_DIGITS} digits, found one of about "
                              f"{int(abs(value).bit_length() * 0.30103) + 1} digits.", key_path=key_path)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"expected a finite {label}, found {value!r}.", key_path=key_path)
        if minimum is not None and value < minimum:
            raise ConfigError(f"expected a {label} >= {minimum}, found {value!r}.", key_path=key_path)
    return value


@dataclass
class Section:
    """A config block as typed attributes; ``raw`` keeps the block as written, ``key_path`` where it is."""

    raw: dict = field(default_factory=dict, repr=False, compare=False, metadata={"internal": True})
    key_path: str = field(default="", repr=False, compare=False, metadata={"internal": True})

    @classmethod
    def schema_fields(cls) -> Dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}

    @classmethod
    def parse(cls, block: Optional[dict], key_path: str, unknown: str = "debug") -> "Section":
        """Check ``block`` against the fields and return the settings; errors name the key path.

        A key the schema does not know, and not close to one it knows (a typo: an error), is reported as
        ``unknown`` says: ``debug`` (logged at debug level), ``warn`` (a warning) or ``error`` (``--strict``)."""
        block = {} if block is None else block
        if not isinstance(block, dict):
            raise ConfigError(f"expected a mapping, found {type(block).__name__} {block!r}.", key_path=key_path)
        fields = cls.schema_fields()
        values = {}
        for name, spec in fields.items():
            path = join_path(key_path, name)
            kind, required = spec.metadata["kind"], spec.metadata["required"]
            value = block.get(name)
            if value is None and name in block and spec.metadata["nullable"]:
                values[name] = None
                continue
            if value is None:
                if required:
                    raise cls._missing(block, name, key_path)
                if isinstance(kind, type) and spec.default_factory is not dataclasses.MISSING:
                    values[name] = kind.parse(None, path, unknown)
                continue
            value = _check_value(value, kind, spec.metadata["min"], path)
            values[name] = kind.parse(value, path, unknown) if isinstance(kind, type) else value
        for name in block:
            if name not in fields:
                cls._unknown(name, key_path, unknown)
        return cls(raw=block, key_path=key_path, **values)

    @classmethod
    def _missing(cls, block: dict, name: str, key_path: str) -> ConfigError:
        fields = cls.schema_fields()
        extra = [k for k in block if k not in fields]
        close = nearest_names(name, extra, n=1)
        where = f" under {key_path!r}." if key_path else " at the top level."
        if close:
            return ConfigError(f"the required key {join_path(key_path, name)!r} is missing; found {close[0]!r}: did "
                               f"you mean {name!r}?", key_path=join_path(key_path, close[0]))
        return ConfigError(f"the required key {name!r} is missing{where}", key_path=join_path(key_path, name),
                           hint=REQUIRED_HINTS.get(join_path(key_path, name), ""))

    @classmethod
    @classmethod
    def _unknown(cls, name: str, key_path: str, unknown: str) -> None:
        path = join_path(key_path, name)
        if str(name).startswith("_"):  # the file's scratch space (torchdistill 1.x: anchors such as _weights)
            return
        close = [c for c in nearest_names(name, cls.schema_fields(), n=3) if c != name]
        if close:
            raise ConfigError(f"unknown key {name!r}.", key_path=path, candidates=close)
        if unknown == "error":
            raise ConfigError(f"{name!r} is not a key distillkit reads (--strict refuses it).", key_path=path,
                              hint="Remove it, or run without --strict to have it ignored with a warning.")
        log = logger.warning if unknown == "warn" else logger.debug
        log("config key %s is not one distillkit reads; it is ignored (--strict refuses such keys)", path)


REQUIRED_HINTS = {
    "datasets": "Declare datasets.<name>.{type, splits.<split>.{dataset_id, params}}.",
    "models": "Declare models.student_model (and models.teacher_model to distil).",
    "train.criterion": "For plain training: criterion: {type: GeneralizedCustomLoss, org_term: "
                       "{criterion: {type: CrossEntropyLoss}, factor: 1.0}}.",
}


@dataclass
class LoaderSettings(Section):
    dataset_id: str = setting("str", required=True)
    random_sample: Optional[bool] = setting("bool")
    batch_size: int = setting("int", required=True, min=1)
    num_workers: int = setting("int", 0, min=0)
    cache_output: Any = setting("any")
    pin_memory: Optional[bool] = setting("bool")
    drop_last: bool = setting("bool", False)
    persistent_workers: bool = setting("bool", False)
    prefetch_factor: Optional[int] = setting("int", min=1)
    repeated_aug: int = setting("int", 0, min=0)
    dataset_wrapper: Optional[dict] = setting("mapping")  # {type | name, params}: extras in the batch's supp_dict
    decode: str = setting("str", "auto")  # auto | pil | fast | cuda | dali (distillkit/data/decoding.py)
    collate_fn: Optional[str] = setting("str")  # a registered collate function; default: the task's
    batch_sampler: Optional[dict] = setting("mapping")  # GroupedBatchSampler (data/grouped_batches.py), BatchSampler

    @classmethod
    def parse(cls, block, key_path: str, unknown: str = "debug"):
        """As Section's; a ``batch_sampler: {type: GroupedBatchSampler | BatchSampler, params: {batch_size, ...}}``
        (torchdistill's detection loaders) gives the batch size, and a BatchSampler's ``drop_last`` the loader's
        (grouping: :mod:`distillkit.data.grouped_batches`)."""
        sampler = block.get("batch_sampler") if isinstance(block, dict) else None
        if isinstance(sampler, dict):
            path = join_path(key_path, "batch_sampler")
            if sampler.get("type") not in ("GroupedBatchSampler", "BatchSampler"):
                raise ConfigError(f"batch_sampler {sampler.get('type')!r} is not supported; GroupedBatchSampler and "
                                  f"BatchSampler are.", key_path=f"{path}.type")
            params = sampler.get("params") or {}
            if sampler.get("type") == "BatchSampler" and "drop_last" in params and "drop_last" not in block:
                block = {**block, "drop_last": params["drop_last"]}
        if isinstance(sampler, dict):
            size = (sampler.get("params") or {}).get("batch_size")
            if size is None and block.get("batch_size") is None:
                raise ConfigError("the batch_sampler names no batch_size.", key_path=f"{path}.params.batch_size")
            if size is not None and block.get("batch_size") not in (None, size):
                raise ConfigError(f"batch_size is given twice: {block['batch_size']} for the loader and {size} for "
                                  f"its batch_sampler; keep one.", key_path=f"{path}.params.batch_size")
            block = {**block, "batch_size": block.get("batch_size") or size}
        return super().parse(block, key_path, unknown)


@dataclass
class ModelSettings(Section):
    name: str = setting("str", required=True)
    params: dict = setting("mapping", factory=dict)
    experiment: Optional[str] = setting("str")
    ckpt: Optional[str] = setting("str")  # read when it exists, and the student's best weights are saved there
    src_ckpt: Optional[str] = setting("str")  # torchdistill 1.x: read when it exists
    dst_ckpt: Optional[str] = setting("str")  # torchdistill 1.x: the student's best weights are saved there
    repo_or_dir: Optional[str] = setting("str")

    @property
    def load_from(self) -> Optional[str]:
        """The checkpoint the model starts from (when the file exists)."""
        return self.src_ckpt if self.src_ckpt else self.ckpt

    @property
    def save_to(self) -> Optional[str]:
        """Where the student's best weights go."""
        return self.dst_ckpt if self.dst_ckpt else self.ckpt


@dataclass
class SideSettings(Section):
    """``train.teacher`` / ``train.student``: how a model becomes one side of distillation."""
    sequential: list = setting("list", factory=list)
    special: Optional[dict] = setting("mapping")
    auxiliary_model_wrapper: Optional[dict] = setting("mapping")  # torchdistill's later name for special
    forward_hook: dict = setting("mapping", factory=dict)
    wrapper: Optional[str] = setting("str")
    requires_grad: Optional[bool] = setting("bool")  # None: the teacher frozen, the student trainable
    frozen_modules: list = setting("list", factory=list)
    adaptations: Any = setting("any")
    find_unused_parameters: bool = setting("bool", False)
    sync_bn: bool = setting("bool", False)
    forward_proc: Optional[str] = setting("str")  # torchdistill's: how the batch reaches the model (model_side.py)
    from_student_of_stage: Optional[int] = setting("int", min=1)  # a teacher: the final student of that stage
    reinitialize: bool = setting("bool", False)  # a student: start this stage from fresh weights (born-again)

    def __post_init__(self):
        if self.auxiliary_model_wrapper is not None:
            if self.special is not None:
                raise ConfigError("both 'special' and 'auxiliary_model_wrapper' are given; they are two names of one "
                                  "key (the special module): keep one.",
                                  key_path=join_path(self.key_path, "auxiliary_model_wrapper"))
            self.special = self.auxiliary_model_wrapper

    @property
    def special_key(self) -> str:
        """The special module's key as the file writes it (for error messages)."""
        return "special" if self.auxiliary_model_wrapper is None else "auxiliary_model_wrapper"


@dataclass
class TypedBlock(Section):
    type: str = setting("str", required=True)
    params: dict = setting("mapping", factory=dict)


@dataclass
class OptimizerSettings(TypedBlock):
    """``train.optimizer``; torchdistill's ``grad_accum_step`` / ``max_grad_norm`` live here too."""
    grad_accum_step: int = setting("int", 1, min=1)  # backward passes per optimizer step, loss / grad_accum_step
    max_grad_norm: Optional[float] = setting("number", min=0)  # the same clipping as train.clip_grad_norm
    # [{module: path, params: {lr, ...}, is_teacher: bool}]: only these modules train, each a parameter group
    module_wise_params: list = setting("list", factory=list)


@dataclass
class SchedulerSettings(TypedBlock):
    scheduling_step: int = setting("int", 0, min=0)


@dataclass
class CriterionSettings(Section):
    type: str = setting("str", required=True)
    params: dict = setting("mapping", factory=dict)
    org_term: Optional[dict] = setting("mapping")
    sub_terms: Optional[dict] = setting("mapping")
    func2extract_org_loss: Optional[str] = setting("str")  # how the org term reads the outputs (losses/org_loss.py)


@dataclass
class AmpBlock(Section):
    enabled: bool = setting("bool", False)
    dtype: str = setting("str", "bfloat16")


@dataclass
class TeacherCacheSettings(Section):
    dir: str = setting("str", required=True)
    top_k: Optional[int] = setting("int", 10, min=1, nullable=True)  # null: every logit, exactly


@dataclass
class BestMetricSettings(Section):
    """Which epoch's weights are "best": ``name`` of a metrics.jsonl column and ``mode``."""
    name: Optional[str] = setting("str")  # default: val_top1 with a validation loader, else loss
    mode: Optional[str] = setting("str")  # default: max for accuracies, min for losses


@dataclass
class TrainSettings(Section):
    log_freq: int = setting("int", 100, min=1)
    num_epochs: int = setting("int", required=True, min=0)
    train_data_loader: LoaderSettings = setting(LoaderSettings, required=True)
    val_data_loader: Optional[LoaderSettings] = setting(LoaderSettings)
    teacher: SideSettings = setting(SideSettings, factory=SideSettings)
    student: SideSettings = setting(SideSettings, factory=SideSettings)
    model: Optional[SideSettings] = setting(SideSettings)  # torchdistill 0.x: the side of models.model
    teachers: Optional[dict] = setting("mapping")  # {name: side block} of models.teachers (multi/groups.py)
    students: Optional[dict] = setting("mapping")  # {name: side block} of models.students (multi/mutual.py)
    born_again: Optional[dict] = setting("mapping")  # {generations, first}: expanded into stages (multi/born_again.py)
    optimizer: OptimizerSettings = setting(OptimizerSettings, required=True)
    scheduler: Optional[SchedulerSettings] = setting(SchedulerSettings)
    criterion: CriterionSettings = setting(CriterionSettings, required=True)
    apex: Optional[dict] = setting("mapping")
    amp: AmpBlock = setting(AmpBlock, factory=AmpBlock)
    clip_grad_norm: Optional[float] = setting("number", min=0)
    scale_lr: bool = setting("bool", False)  # lr x world size (the runner's --scale-lr)
    adjust_lr: bool = setting("bool", False)  # earlier spelling of scale_lr, read as it
    mixup: Optional[dict] = setting("mapping")
    model_ema: Optional[dict] = setting("mapping")
    keep_last_checkpoints: int = setting("int", 2, min=1)
    skip_nonfinite: int = setting("int", 0, min=0)
    channels_last: bool = setting("bool", False)
    compile: Any = setting("any")
    teacher_inference_mode: bool = setting("bool", False)
    teacher_cache: Optional[TeacherCacheSettings] = setting(TeacherCacheSettings)
    best_metric: BestMetricSettings = setting(BestMetricSettings, factory=BestMetricSettings)
    # [name | {name, <option>: value}]: experiment trackers (distillkit/engine/trackers); absent: tensorboard when
    # installed; []: none
    trackers: Optional[list] = setting("list")

    def __post_init__(self):
        clip = self.optimizer.max_grad_norm if self.optimizer is not None else None
        if clip is not None:
            if self.clip_grad_norm is not None and self.clip_grad_norm != clip:
                raise ConfigError(f"train.clip_grad_norm ({self.clip_grad_norm}) and optimizer.max_grad_norm ({clip}) "
                                  f"are two names of one setting with different values: keep one.",
                                  key_path=join_path(self.optimizer.key_path, "max_grad_norm"))
            self.clip_grad_norm = clip


@dataclass
class EvaluationSettings(Section):
    test_data_loader: Optional[LoaderSettings] = setting(LoaderSettings)


@dataclass
class RunSettings(Section):
    """The whole config: ``datasets`` and ``models`` are read by their builders, ``train`` and ``test`` here.

    ``stages``: the training stages in order, each a TrainSettings (see :func:`stage_blocks`)."""
    datasets: dict = setting("mapping", required=True)
    models: dict = setting("mapping", required=True)
    train: dict = setting("mapping", required=True)
    test: EvaluationSettings = setting(EvaluationSettings, factory=EvaluationSettings)
    imports: List[str] = setting("list", factory=list)
    task: Optional[str] = setting("str")  # classification | segmentation | detection; default: inferred (tasks/)
    stages: List[TrainSettings] = field(default_factory=list, repr=False, metadata={"internal": True})

    @classmethod
    def parse(cls, block, key_path, unknown: str = "debug"):
        settings = super().parse(block, key_path, unknown)
        settings.stages = [TrainSettings.parse(stage, path, unknown) for path, stage in stage_blocks(settings.train)]
        return settings


INHERITED_BY_STAGES = ("train_data_loader", "val_data_loader")


def stage_blocks(train: dict) -> List[Tuple[str, dict]]:
    """``[(key path, block)]`` of the training stages: ``train`` itself, or ``train.stage1``, ``train.stage2``, ...
    in order (torchdistill's multi-stage form).  A stage block is read with the keys written beside the stages
    (``train.log_freq``, ...) as its defaults, and a stage without loaders keeps the previous stage's."""
    if train.get("born_again") is not None:
        train = born_again_stages(train)
    names = sorted((k for k in train if STAGE_KEY.match(str(k))), key=lambda k: int(STAGE_KEY.match(k).group(1)))
    if not names:
        return [("train", train)]
    shared = {k: v for k, v in train.items() if not STAGE_KEY.match(str(k))}
    blocks, previous = [], {}
    for name in names:
        if not isinstance(train[name], dict):
            raise ConfigError(f"expected a mapping (one training stage), found {type(train[name]).__name__}.",
                              key_path=f"train.{name}")
        block = {**shared, **{k: previous[k] for k in INHERITED_BY_STAGES if k in previous}, **train[name]}
        blocks.append((f"train.{name}", block))
        previous = block
    return blocks


def is_known_key(parts) -> bool:
    """Whether the key path ``parts`` (e.g. ``['train', 'compile']``) is one the schema declares."""
    section = RunSettings
    for depth, part in enumerate(parts):
        if section is TrainSettings and STAGE_KEY.match(part) and parts[depth - 1] == "train":
            continue  # train.stageN.<key>: a stage is a TrainSettings
        fields = section.schema_fields() if isinstance(section, type) and issubclass(section, Section) else None
        if not fields or part not in fields:
            return False
        section = TrainSettings if (depth == 0 and part == "train") else fields[part].metadata["kind"]
    return True
