"""pycocotools, the one optional library detection needs (COCO json reading, masks, and mAP)."""
from __future__ import annotations

from ...errors import DistillkitError

MISSING = ("object detection needs pycocotools (COCO annotations, instance masks and COCO mAP), which is not "
           "installed. Install it with pip install 'distillkit[detection]' (or pip install pycocotools).")


def pycocotools():
    """The ``pycocotools`` package with its ``coco``, ``cocoeval`` and ``mask`` modules, or a DistillkitError
    naming the extra to install."""
    try:
        import pycocotools.coco  # noqa: F401
        import pycocotools.cocoeval  # noqa: F401
        import pycocotools.mask  # noqa: F401
    except ImportError as exc:
        raise DistillkitError(MISSING) from exc
    import pycocotools as package

    return package
