"""Bottleneck-injected R-CNN detectors of generalized head network distillation (GHND).

Matsubara & Levorato, "Neural Compression and Filtering for Edge-assisted Real-time Object Detection in
Challenged Networks", ICPR 2020: a ResNet-FPN Faster / Mask R-CNN whose ``layer1`` is replaced by a small
encoder-decoder with a ``bottleneck_channel``-wide middle (:class:`Bottleneck4LargeResNet` for ResNet-50/101/152,
:class:`Bottleneck4SmallResNet` for ResNet-18/34).  The module tree and state_dict keys follow torchdistill
0.3.3's ``custom_fasterrcnn_resnet_fpn`` / ``custom_maskrcnn_resnet_fpn``
(``torchdistill/models/custom/bottleneck/detection``), whose 0.x configs name them; the 1.x configs load the
same models from sc2-benchmark through torch.hub (``backbone: {key, kwargs}``, ``weights``), and both forms are
read here.  Without the bottleneck (``layer1`` absent) the backbone is the plain ResNet: the FT config's ResNet-18
Faster R-CNN student.
"""
from __future__ import annotations

import copy

from torch import nn
from torchvision.models import get_model_weights, resnet
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import misc as misc_nn_ops

from ...errors import ConfigError
from ...models.head_network import Bottleneck, _processors
from ...registry import register_model

LARGE_RESNETS = ("resnet50", "resnet101", "resnet152")
SMALL_RESNETS = ("resnet18", "resnet34")
LAYERS_TO_TRAIN = ("layer4", "layer3", "layer2", "layer1", "bn1", "conv1")


def _conv_bn(in_channels: int, out_channels: int, padding: int) -> list:
    return [nn.Conv2d(in_channels, out_channels, kernel_size=2, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels)]


def _encoder_layers(bottleneck_channel: int) -> list:
    """64 -> 64 -> 256 -> 64 -> bottleneck_channel, 2x2 convs with padding 1 (the input of ResNet's layer1)."""
    return [*_conv_bn(64, 64, 1), *_conv_bn(64, 256, 1), nn.ReLU(inplace=True), *_conv_bn(256, 64, 1),
            nn.Conv2d(64, bottleneck_channel, kernel_size=2, padding=1, bias=False)]


def _decoder_layers(bottleneck_channel: int, out_channels: int) -> list:
    """BN, ReLU, then bottleneck_channel -> 64 -> 128 -> out -> out, 2x2 convs without padding (back to layer1's
    output size)."""
    mid = 64 if out_channels == 64 else 256
    return [nn.BatchNorm2d(bottleneck_channel), nn.ReLU(inplace=True), *_conv_bn(bottleneck_channel, 64, 0),
            *_conv_bn(64, 128, 0), nn.ReLU(inplace=True), *_conv_bn(128, mid, 0), *_conv_bn(mid, out_channels, 0),
            nn.ReLU(inplace=True)]


def _bottleneck(bottleneck_channel: int, out_channels: int, compressor=None, decompressor=None) -> Bottleneck:
    encoder = _encoder_layers(bottleneck_channel)
    return Bottleneck(encoder + _decoder_layers(bottleneck_channel, out_channels), len(encoder),
                      *_processors(compressor, decompressor))


def Bottleneck4LargeResNet(bottleneck_channel: int, compressor=None, decompressor=None) -> Bottleneck:
    """layer1 of ResNet-50/101/152: 64 channels in, 256 out, at 1/4 of the input size."""
    return _bottleneck(bottleneck_channel, 256, compressor, decompressor)


def Bottleneck4SmallResNet(bottleneck_channel: int, compressor=None, decompressor=None) -> Bottleneck:
    """layer1 of ResNet-18/34: 64 channels in and out, at 1/4 of the input size."""
    return _bottleneck(bottleneck_channel, 64, compressor, decompressor)


BOTTLENECKS = {"Bottleneck4LargeResNet": (Bottleneck4LargeResNet, LARGE_RESNETS),
               "Bottleneck4SmallResNet": (Bottleneck4SmallResNet, SMALL_RESNETS)}


def _entry(block: dict, where: str):
    """``{name, params}`` (0.x) or ``{key, kwargs}`` (1.x) -> ``(name, params)``."""
    if not isinstance(block, dict) or not (block.get("name") or block.get("key")):
        raise ConfigError("expected {name, params} (or the 1.x {key, kwargs}).", key_path=where)
    return block.get("name") or block.get("key"), dict(block.get("params") or block.get("kwargs") or {})


def _weights(value, default_enum):
    """A torchvision weights value (enum, its name, True for the default) as an enum, or None."""
    if value is None or value is False:
        return None
    if value is True:
        return default_enum.DEFAULT
    if isinstance(value, str):
        return default_enum[value] if value != "DEFAULT" else default_enum.DEFAULT
    return value


def custom_resnet_fpn_backbone(name: str, params: dict, where: str = "params.backbone") -> BackboneWithFPN:
    """A ResNet (FrozenBatchNorm2d) with its ``layer1`` optionally a bottleneck (``params.layer1: {type |
    key, bottleneck_channel, compressor, decompressor}``), ``trainable_backbone_layers`` of
    layer4 .. conv1 trainable (up to 6), and an FPN over ``returned_layers`` (default 1..4)."""
    resnet_name = name[len("custom_"):] if name.startswith("custom_") else name
    if resnet_name not in LARGE_RESNETS + SMALL_RESNETS:
        raise ConfigError(f"the backbone {name!r} is not a ResNet; one of {', '.join(LARGE_RESNETS + SMALL_RESNETS)}"
                          f" (with or without custom_) is.", key_path=f"{where}.name")
    builder = getattr(resnet, resnet_name)
    weights_enum = get_model_weights(builder)
    weights = _weights(params.get("weights", params.get("pretrained")), weights_enum)
    backbone = builder(weights=weights, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    layer1 = params.get("layer1")
    if layer1 is not None:
        kind = layer1.get("type") or layer1.get("key")
        if kind not in BOTTLENECKS:
            raise ConfigError(f"layer1 type {kind!r} is not known; {', '.join(BOTTLENECKS)} are.",
                              key_path=f"{where}.params.layer1.type")
        make, fits = BOTTLENECKS[kind]
        if resnet_name in fits:  # as torchdistill: a bottleneck of the other size leaves layer1 as it is
            backbone.layer1 = make(layer1["bottleneck_channel"], layer1.get("compressor"), layer1.get("decompressor"))
    trainable = params.get("trainable_backbone_layers", 4)
    if not 0 <= trainable <= 6:
        raise ConfigError(f"trainable_backbone_layers is 0..6, found {trainable!r}.",
                          key_path=f"{where}.params.trainable_backbone_layers")
    layers_to_train = LAYERS_TO_TRAIN[:trainable]
    for parameter_name, parameter in backbone.named_parameters():
        if not parameter_name.startswith(layers_to_train):
            parameter.requires_grad_(False)
    returned = params.get("returned_layers") or [1, 2, 3, 4]
    stage2 = backbone.inplanes // 8
    return BackboneWithFPN(backbone, {f"layer{k}": str(v) for v, k in enumerate(returned)},
                           [stage2 * 2 ** (k - 1) for k in returned], 256)


def _rcnn(cls, detector_weights_enum, backbone: dict, pretrained, weights, progress: bool, num_classes: int,
          pretrained_backbone, trainable_backbone_layers: int, kwargs: dict, roi_sizes: dict):
    name, params = _entry(copy.deepcopy(backbone), "params.backbone")
    detector_weights = _weights(weights if weights is not None else pretrained, detector_weights_enum)
    if pretrained is not None or pretrained_backbone is not None:  # 0.x: trainable layers forced when nothing loads
        if not (pretrained or pretrained_backbone):
            params["trainable_backbone_layers"] = 5
    params.setdefault("trainable_backbone_layers", trainable_backbone_layers)
    if detector_weights is not None:  # no need for the backbone's own weights
        params.pop("weights", None)
        params["pretrained"] = False
    body = custom_resnet_fpn_backbone(name, params)
    maps = len(body.body.return_layers)
    pools = {} if maps == 4 else {key: MultiScaleRoIAlign([str(i) for i in range(maps)], size, 2)
                                  for key, size in roi_sizes.items()}
    model = cls(body, num_classes, **pools, **kwargs)
    if detector_weights is not None and name.endswith("resnet50"):
        state = detector_weights.get_state_dict(progress=progress)
        model.load_state_dict(state, strict=False)  # the bottleneck's weights are not in the detector's file
    return model


@register_model
def custom_fasterrcnn_resnet_fpn(backbone: dict, pretrained=None, weights=None, progress: bool = True,
                                 num_classes: int = 91, pretrained_backbone=None, trainable_backbone_layers: int = 3,
                                 **kwargs) -> FasterRCNN:
    """Faster R-CNN on :func:`custom_resnet_fpn_backbone`; ``pretrained`` (0.x) / ``weights`` (1.x): COCO weights
    of torchvision's ResNet-50 FPN model, loaded non-strictly (a ResNet-50 backbone only); ``kwargs`` go to
    ``FasterRCNN`` (``min_size``, ``max_size``, ...)."""
    from torchvision.models.detection.faster_rcnn import FasterRCNN_ResNet50_FPN_Weights

    return _rcnn(FasterRCNN, FasterRCNN_ResNet50_FPN_Weights, backbone, pretrained, weights, progress, num_classes,
                 pretrained_backbone, trainable_backbone_layers, kwargs, {"box_roi_pool": 7})


@register_model
def custom_maskrcnn_resnet_fpn(backbone: dict, pretrained=None, weights=None, progress: bool = True,
                               num_classes: int = 91, pretrained_backbone=None, trainable_backbone_layers: int = 3,
                               **kwargs) -> MaskRCNN:
    """Mask R-CNN as :func:`custom_fasterrcnn_resnet_fpn` (torchvision's ResNet-50 FPN Mask R-CNN weights)."""
    from torchvision.models.detection.mask_rcnn import MaskRCNN_ResNet50_FPN_Weights

    return _rcnn(MaskRCNN, MaskRCNN_ResNet50_FPN_Weights, backbone, pretrained, weights, progress, num_classes,
                 pretrained_backbone, trainable_backbone_layers, kwargs, {"box_roi_pool": 7, "mask_roi_pool": 14})


def is_detection_model(model: nn.Module) -> bool:
    """torchvision's detectors (R-CNNs, RetinaNet, FCOS, SSD) take ``(images, targets)`` in training."""
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

    return isinstance(model, GeneralizedRCNN) or hasattr(model, "compute_loss") or (
        hasattr(model, "transform") and hasattr(model, "postprocess_detections"))


__all__ = ["Bottleneck4LargeResNet", "Bottleneck4SmallResNet", "custom_resnet_fpn_backbone",
           "custom_fasterrcnn_resnet_fpn", "custom_maskrcnn_resnet_fpn", "is_detection_model"]
