"""The "poly" learning-rate policy of DeepLab (Chen et al., "Rethinking Atrous Convolution for Semantic Image
Segmentation", 2017), under torchdistill's name: ``lr = lr_0 * (1 - it / (num_iterations * num_epochs)) ** power``,
stepped once per iteration (``scheduling_step: 1``).

torchdistill 0.x configs write ``num_iterations: None`` and let the script fill in the iterations per epoch;
distillkit does the same (:func:`distillkit.engine.optim.build_scheduler`); 1.x configs compute it with
:func:`get_num_iterations` (its examples' ``utils.dataset.get_num_iterations``).
"""
from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR

from ..errors import ConfigError
from ..registry import register_scheduler


@register_scheduler
def poly_lr_scheduler(optimizer, num_iterations, num_epochs, power: float = 0.9):
    total = int(num_iterations) * int(num_epochs)
    if total <= 0:
        raise ConfigError(f"poly_lr_scheduler needs num_iterations * num_epochs > 0, found {num_iterations} * "
                          f"{num_epochs}.", key_path="params.num_iterations")
    return LambdaLR(optimizer, lambda it: max(0.0, 1 - it / total) ** power)


def get_num_iterations(dataset, batch_size: int, world_size: int = 1) -> int:
    """Iterations per epoch of one process: ``ceil(len(dataset) / batch_size / world_size)``."""
    return math.ceil(len(dataset) / batch_size / world_size)
