"""Factor transfer's paraphraser (teacher side) and translator (student side).

Kim, Park & Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer", NeurIPS 2018
(supplementary material: three 3x3 convolutions with leaky ReLU 0.1, the paraphraser's encoder reducing
the channels by the paraphrase rate k, and a mirrored transposed-convolution decoder).  Stage 1 trains the
paraphraser to reconstruct the teacher feature (``uses_decoder: True``, an MSE term); stage 2 matches the
student translator's factor with the paraphraser's (``uses_decoder: False``, ``FTLoss``).
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ...errors import ConfigError
from ...hooks import find_module, named_sequential
from ...registry import SPECIAL_MODULES, register_special_module
from ...utils import call_with_params
from ..checkpoint import load_model_weights, save_atomic
from .base import SpecialModule


def conv_block(in_channels: int, out_channels: int, kernel_size, stride, padding, uses_bn: bool,
               transposed: bool = False) -> list:
    """``[Conv2d | ConvTranspose2d, BatchNorm2d (when uses_bn), LeakyReLU(0.1)]``."""
    conv = nn.ConvTranspose2d if transposed else nn.Conv2d
    layers = [conv(in_channels, out_channels, kernel_size, stride=stride, padding=padding)]
    if uses_bn:
        layers.append(nn.BatchNorm2d(out_channels))
    return layers + [nn.LeakyReLU(0.1)]


class Paraphraser4FactorTransfer(nn.Module):
    """Encoder ``C -> C -> kC -> kC`` (``int(C * k)``), decoder ``kC -> kC -> C -> C``; ``forward`` returns
    ``decoder(encoder(z))`` when ``uses_decoder``, else the factor ``encoder(z)``."""

    def __init__(self, k: float, num_input_channels: int, kernel_size=3, stride=1, padding=1, uses_bn: bool = True,
                 uses_decoder: bool = True):
        super().__init__()
        self.paraphrase_rate = k
        channels, factor_channels = num_input_channels, int(num_input_channels * k)
        geometry = (kernel_size, stride, padding, uses_bn)
        self.encoder = nn.Sequential(*conv_block(channels, channels, *geometry),
                                     *conv_block(channels, factor_channels, *geometry),
                                     *conv_block(factor_channels, factor_channels, *geometry))
        self.decoder = nn.Sequential(*conv_block(factor_channels, factor_channels, *geometry, transposed=True),
                                     *conv_block(factor_channels, channels, *geometry, transposed=True),
                                     *conv_block(channels, channels, *geometry, transposed=True))
        self.uses_decoder = uses_decoder

    def forward(self, z):
        factor = self.encoder(z)
        return self.decoder(factor) if self.uses_decoder else factor


class Translator4FactorTransfer(nn.Sequential):
    """Three conv blocks ``C_in -> C_in -> C_out -> C_out``, as the paraphraser's encoder."""

    def __init__(self, num_input_channels: int, num_output_channels: int, kernel_size=3, stride=1, padding=1,
                 uses_bn: bool = True):
        geometry = (kernel_size, stride, padding, uses_bn)
        super().__init__(*conv_block(num_input_channels, num_input_channels, *geometry),
                         *conv_block(num_input_channels, num_output_channels, *geometry),
                         *conv_block(num_output_channels, num_output_channels, *geometry))


def minimal_model(model: nn.Module, minimal, where: str) -> nn.Module:
    """``minimal: {sequential: [paths], frozen_modules: [paths], special: {type, params}}`` applied to ``model``
    (None: the model); ``special`` (1.x: ``auxiliary_model_wrapper: {key, kwargs}``) wraps the cut-down model in
    that special module as a teacher (the detection FT config's ``HeadRCNN``)."""
    minimal = minimal or {}
    unknown = sorted(set(minimal) - {"sequential", "frozen_modules", "special", "auxiliary_model_wrapper"})
    if unknown:
        raise ConfigError(f"{where} supports sequential, frozen_modules and special, not {', '.join(unknown)}.",
                          key_path="params.minimal")
    for index, path in enumerate(minimal.get("frozen_modules") or []):
        find_module(model, path, f"{where}.frozen_modules.{index}").requires_grad_(False)
    paths = minimal.get("sequential") or []
    model = named_sequential(model, paths, where) if paths else model
    wrapper = minimal.get("special") or minimal.get("auxiliary_model_wrapper")
    if wrapper:
        kind = wrapper.get("type") or wrapper.get("key")
        cls = SPECIAL_MODULES.resolve(kind, key_path="params.minimal.special.type")
        model = call_with_params(cls, wrapper.get("params") or wrapper.get("kwargs"), "params.minimal.special.params",
                                 model, True)
    return model


def _required(value, name: str, owner: str, what: str):
    if value is None:
        raise ConfigError(f"{owner} needs {name}: {what}.", key_path=f"params.{name}")
    return value


@register_special_module(aliases={"paraphraser_params": "paraphraser_kwargs", "translator_params": "translator_kwargs"})
class Teacher4FactorTransfer(SpecialModule):
    """Params: ``minimal`` (None, or ``{sequential, frozen_modules}`` to cut the teacher down),
    ``input_module_path`` (whose output the paraphraser reads, e.g. ``teacher_model.layer4``),
    ``paraphraser_kwargs`` (``Paraphraser4FactorTransfer``'s: k, num_input_channels, ...),
    ``paraphraser_ckpt`` (loaded when the file exists; ``post_epoch_process`` writes it) and
    ``uses_decoder``.  The teacher runs without autograd; hook ``paraphraser`` for its output."""

    model_attr = "teacher_model"

    def __init__(self, model: nn.Module, is_teacher: bool = False, minimal: dict = None, input_module_path: str = None,
                 paraphraser_kwargs: dict = None, paraphraser_ckpt: str = None, uses_decoder: bool = None):
        owner = "Teacher4FactorTransfer"
        _required(input_module_path, "input_module_path", owner, "the module whose output is paraphrased")
        _required(paraphraser_kwargs, "paraphraser_kwargs", owner, "{k, num_input_channels, kernel_size, ...}")
        _required(uses_decoder, "uses_decoder", owner, "True to train the paraphraser, False to transfer factors")
        super().__init__(minimal_model(model, minimal, f"{owner} minimal"), is_teacher)
        self.input_module_path = input_module_path
        try:
            self.paraphraser = Paraphraser4FactorTransfer(uses_decoder=uses_decoder, **paraphraser_kwargs)
        except TypeError as exc:
            raise ConfigError(f"{owner} paraphraser_kwargs: {exc}; Paraphraser4FactorTransfer takes k, "
                              f"num_input_channels, kernel_size, stride, padding and uses_bn.",
                              key_path="params.paraphraser_kwargs") from exc
        self.ckpt_file_path = paraphraser_ckpt
        if paraphraser_ckpt and os.path.isfile(paraphraser_ckpt):
            load_model_weights(self.paraphraser, paraphraser_ckpt, what=f"{owner} paraphraser_ckpt")
        self.uses_decoder = uses_decoder

    def forward(self, x, *targets):
        with torch.no_grad():
            return self.teacher_model(x, *targets)

    def required_io(self):
        return [(self.input_module_path, "output")]

    def post_forward(self, io_dict: dict) -> None:
        if self.uses_decoder and not self.paraphraser.training:
            self.paraphraser.train()
        self.paraphraser(io_dict[self.input_module_path]["output"])

    def post_epoch_process(self) -> None:
        """Save the paraphraser's weights to ``paraphraser_ckpt`` (the Trainer calls it on rank 0)."""
        if self.ckpt_file_path:
            save_atomic(self.paraphraser.state_dict(), self.ckpt_file_path)


@register_special_module(aliases={"paraphraser_params": "paraphraser_kwargs", "translator_params": "translator_kwargs"})
class Student4FactorTransfer(SpecialModule):
    """Params: ``input_module_path`` (whose output the translator reads, e.g. ``student_model.layer4``) and
    ``translator_kwargs`` (``Translator4FactorTransfer``'s).  Hook ``translator`` for the student factor."""

    model_attr = "student_model"

    def __init__(self, model: nn.Module, is_teacher: bool = False, input_module_path: str = None,
                 translator_kwargs: dict = None):
        owner = "Student4FactorTransfer"
        _required(input_module_path, "input_module_path", owner, "the module whose output is translated")
        _required(translator_kwargs, "translator_kwargs", owner, "{num_input_channels, num_output_channels, ...}")
        super().__init__(model, is_teacher)
        self.input_module_path = input_module_path
        try:
            self.translator = Translator4FactorTransfer(**translator_kwargs)
        except TypeError as exc:
            raise ConfigError(f"{owner} translator_kwargs: {exc}; Translator4FactorTransfer takes "
                              f"num_input_channels, num_output_channels, kernel_size, stride, padding and "
                              f"uses_bn.", key_path="params.translator_kwargs") from exc

    def required_io(self):
        return [(self.input_module_path, "output")]

    def post_forward(self, io_dict: dict) -> None:
        self.translator(io_dict[self.input_module_path]["output"])
