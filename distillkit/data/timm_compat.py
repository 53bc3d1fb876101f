"""Keep timm's RandAugment exact on Pillow versions that refuse ``posterize(img, 0)``.

DeiT's ``rand-m9-mstd0.5-inc1`` draws magnitudes up to 10, where the increasing
posterize keeps 0 bits: older Pillow returns a black image, Pillow 13 raises
``ValueError: bits must be between or equal to 1 and 8`` mid-epoch.  This
restores the old result (all bits dropped = black) without touching other ops.
"""
from __future__ import annotations

from PIL import Image, ImageOps

_patched = False


def _pillow_refuses_zero_bits() -> bool:
    try:
        ImageOps.posterize(Image.new("L", (1, 1)), 0)
    except ValueError:
        return True
    return False


def patch_timm_posterize() -> None:
    """Make timm's posterize op return a black image for 0 bits, as Pillow < 13 did (once per process)."""
    global _patched
    if _patched or not _pillow_refuses_zero_bits():
        _patched = True
        return
    from timm.data import auto_augment

    original = auto_augment.posterize

    def posterize(img, bits_to_keep, **kwargs):
        if bits_to_keep <= 0:
            return Image.new(img.mode, img.size)
        return original(img, bits_to_keep, **kwargs)

    for name, op in list(auto_augment.NAME_TO_OP.items()):
        if op is original:
            auto_augment.NAME_TO_OP[name] = posterize
    auto_augment.posterize = posterize
    _patched = True
