"""A tiny COCO layout for the detection tests: 64-pixel images, an instances json with polygons and boxes."""
import json
import os

import numpy as np
from PIL import Image

# image 1: a square (category 1) and a triangle (category 2); image 2: one square; image 3: no annotation
ANNOTATIONS = [
    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 10, 20, 16], "area": 320.0, "iscrowd": 0,
     "segmentation": [[8, 10, 28, 10, 28, 26, 8, 26]]},
    {"id": 2, "image_id": 1, "category_id": 2, "bbox": [36, 30, 20, 20], "area": 200.0, "iscrowd": 0,
     "segmentation": [[36, 50, 56, 50, 46, 30]]},
    {"id": 3, "image_id": 2, "category_id": 1, "bbox": [4, 4, 40, 30], "area": 1200.0, "iscrowd": 0,
     "segmentation": [[4, 4, 44, 4, 44, 34, 4, 34]]},
]
IMAGES = [{"id": 1, "file_name": "a.png", "width": 64, "height": 64},
          {"id": 2, "file_name": "b.png", "width": 48, "height": 64},
          {"id": 3, "file_name": "c.png", "width": 64, "height": 48}]


def write_coco(root, images=IMAGES, annotations=ANNOTATIONS) -> tuple:
    """``(img_dir, ann_file)`` of the layout under ``root`` (train2017/ and annotations/)."""
    img_dir, ann_dir = os.path.join(root, "train2017"), os.path.join(root, "annotations")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for info in images:
        pixels = rng.integers(0, 255, size=(info["height"], info["width"], 3)).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(img_dir, info["file_name"]))
    ann_file = os.path.join(ann_dir, "instances_train2017.json")
    with open(ann_file, "w") as handle:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "triangle"}]}, handle)
    return img_dir, ann_file
