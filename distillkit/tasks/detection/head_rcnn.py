"""HeadRCNN: the head of an R-CNN detector (torchdistill's special module of the GHND configs).

Runs the detector's own input transform (``GeneralizedRCNNTransform``: normalisation, resizing to
``min_size``/``max_size``, padding into one batch tensor) and then only the modules listed in
``head_rcnn.sequential`` (``['backbone.body']``: the ResNet), so the hooked features of teacher and student
(``seq.backbone.body.layer1`` .. ``layer4``) are those of the same resized images.  The output is the last
listed module's (the backbone's dict of feature maps); no detection is made.
"""
from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from ...hooks import named_sequential
from ...models.special.base import SpecialModule
from ...registry import register_special_module


@register_special_module
class HeadRCNN(SpecialModule):
    """Params: ``head_rcnn: {sequential: [paths]}``.  The model's ``transform`` is kept as ``transform``, the
    listed modules as ``seq`` (each under its own dotted path, as torchdistill's ``redesign_model``)."""

    model_attr = "seq"

    def __init__(self, model: nn.Module, is_teacher: bool = False, head_rcnn: dict = None):
        if not hasattr(model, "transform"):
            raise ConfigError(f"HeadRCNN wraps a torchvision detection model (one with a transform), found "
                              f"{type(model).__name__}.", key_path="params")
        paths = (head_rcnn or {}).get("sequential") or []
        if not paths:
            raise ConfigError("HeadRCNN needs head_rcnn.sequential: the modules to run, e.g. ['backbone.body'].",
                              key_path="params.head_rcnn.sequential")
        super().__init__(named_sequential(model, paths, "HeadRCNN head_rcnn"), is_teacher)
        self.transform = model.transform

    def forward(self, images, targets=None):
        images, _ = self.transform(list(images), targets)
        return self.seq(images.tensors)
