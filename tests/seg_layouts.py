"""Tiny segmentation datasets in each layout (64-pixel images), for the tests and the config sweep.

Each image holds a known rectangle per object so a test can state its mask by hand: ``objects(i)`` lists
``(class, x0, y0, x1, y1)`` (pixels ``x0 <= x < x1``, ``y0 <= y < y1``) of image ``i``.
"""
import json
import os

import numpy as np
from PIL import Image

SIZE = 64


def objects(index):
    """Two rectangles per image: class 1 + index % 3 top-left, class 15 (person) bottom-right."""
    return [(1 + index % 3, 4, 6, 30, 28), (15, 34 + index % 5, 36, 60, 58)]


def mask_of(index, size=SIZE):
    mask = np.zeros((size, size), dtype=np.uint8)
    for cls, x0, y0, x1, y1 in objects(index):
        mask[y0:y1, x0:x1] = cls
    mask[0, :] = 255  # a border row to ignore, as VOC's outlines
    return mask


def image_of(index, size=SIZE):
    rng = np.random.default_rng(index)
    pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    for cls, x0, y0, x1, y1 in objects(index):
        pixels[y0:y1, x0:x1] = (cls * 12) % 255
    return Image.fromarray(pixels)


def _palette_png(mask, path):
    image = Image.fromarray(mask, mode="P")
    palette = np.random.default_rng(0).integers(0, 255, size=768).astype(np.uint8).tolist()
    image.putpalette(palette)
    image.save(path)


def make_voc(root, count=4):
    """``root/VOCdevkit/VOC2012`` with JPEGImages, SegmentationClass (palette PNGs) and train/val lists."""
    base = os.path.join(root, "VOCdevkit", "VOC2012")
    for sub in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    names = [f"2012_{i:06d}" for i in range(count)]
    for i, name in enumerate(names):
        image_of(i).save(os.path.join(base, "JPEGImages", name + ".jpg"), quality=95)
        _palette_png(mask_of(i), os.path.join(base, "SegmentationClass", name + ".png"))
    for split in ("train", "val", "trainval"):
        with open(os.path.join(base, "ImageSets", "Segmentation", split + ".txt"), "w") as f:
            f.write("\n".join(names) + "\n")
    return root


def _polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


COCO_IDS = {1: 5, 2: 2, 3: 16, 15: 1}  # VOC class -> COCO category id (torchdistill's list: 5 aeroplane, 1 person)


def make_coco(root, count=4, splits=("train2017", "val2017")):
    """``root/<split>/*.jpg`` and ``root/annotations/instances_<split>.json``: polygon objects, the second object of
    odd images as an uncompressed RLE (iscrowd), and one object of a category outside the VOC list (dropped)."""
    from pycocotools import mask as mask_api

    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    for split in splits:
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            name = f"{i:012d}.jpg"
            image_of(i).save(os.path.join(root, split, name), quality=95)
            images.append({"id": 100 + i, "file_name": name, "height": SIZE, "width": SIZE})
            for k, (cls, x0, y0, x1, y1) in enumerate(objects(i)):
                ann = {"id": len(annotations) + 1, "image_id": 100 + i, "category_id": COCO_IDS[cls],
                       "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0)), "iscrowd": 0,
                       "segmentation": _polygon(x0, y0, x1, y1)}
                if k == 1 and i % 2:
                    binary = np.zeros((SIZE, SIZE), dtype=np.uint8, order="F")
                    binary[y0:y1, x0:x1] = 1
                    rle = mask_api.encode(binary)
                    counts = _uncompressed_counts(binary)
                    ann.update(iscrowd=1, segmentation={"size": list(rle["size"]), "counts": counts})
                annotations.append(ann)
            annotations.append({"id": len(annotations) + 1, "image_id": 100 + i, "category_id": 90,
                                "bbox": [40, 2, 10, 3], "area": 30.0, "iscrowd": 0,
                                "segmentation": _polygon(40, 2, 50, 5)})
        categories = [{"id": c, "name": str(c)} for c in sorted(set(COCO_IDS.values()) | {90})]
        with open(os.path.join(root, "annotations", f"instances_{split}.json"), "w") as f:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return root


def _uncompressed_counts(binary):
    """COCO's uncompressed RLE counts: run lengths of the column-major flattening, starting with zeros."""
    flat = binary.flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def make_folder(root, count=4):
    """``root/images/<stem>.png`` and ``root/masks/<stem>.png``."""
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i in range(count):
        image_of(i).save(os.path.join(root, "images", f"sample{i}.png"))
        Image.fromarray(mask_of(i)).save(os.path.join(root, "masks", f"sample{i}.png"))
    return root
