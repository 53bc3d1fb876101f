"""COCO mAP of the detection task: hand-made predictions scored by distillkit's evaluator (through the task's
evaluate, from torchvision-style x1y1x2y2 outputs) equal pycocotools' COCOeval called directly on the same
predictions written by hand as COCO results (x, y, w, h); and cases whose mAP is worked out by hand."""
import contextlib
import io
import sys

import pytest
import torch

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from detection_data import write_coco  # noqa: E402
from distillkit.engine.distributed import DistContext  # noqa: E402
from distillkit.errors import DistillkitError  # noqa: E402
from distillkit.tasks.detection.coco_dataset import CocoDetectionDataset  # noqa: E402
from distillkit.tasks.detection.collate import detection_collate  # noqa: E402
from distillkit.tasks.detection.task import DetectionTask  # noqa: E402
from distillkit.tasks.detection.transforms import DetectionCompose, ImageToTensor  # noqa: E402


class FixedPredictions(torch.nn.Module):
    """A 'detector' that returns the predictions given for each image id (identified by image width/height)."""

    def __init__(self, by_size):
        super().__init__()
        self.by_size = by_size

    def forward(self, images):
        return [self.by_size[tuple(image.shape[-2:])] for image in images]


def prediction(boxes, scores, labels, masks=None):
    out = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
           "labels": torch.tensor(labels, dtype=torch.int64)}
    if masks is not None:
        out["masks"] = masks
    return out


def evaluate(tmp_path, by_size, annotated_only=False):
    img_dir, ann_file = write_coco(str(tmp_path))
    dataset = CocoDetectionDataset(img_dir, ann_file, DetectionCompose([ImageToTensor()]), annotated_only)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=detection_collate)
    return DetectionTask().evaluate(FixedPredictions(by_size), loader, DistContext()), ann_file


def pycocotools_stats(ann_file, results, iou_type="bbox"):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_map_equals_pycocotools_on_hand_made_predictions(tmp_path):
    # image 1 (64x64): the square slightly off, the triangle found with the wrong class and with the right one
    # at a lower score, a false positive; image 2 (64 high, 48 wide): the square loosely boxed; image 3: nothing
    by_size = {(64, 64): prediction([[9, 11, 29, 27], [36, 30, 56, 50], [37, 31, 55, 49], [0, 40, 10, 60]],
                                    [0.9, 0.8, 0.6, 0.7], [1, 1, 2, 2]),
               (64, 48): prediction([[2, 6, 40, 30]], [0.95], [1]),
               (48, 64): prediction([[10, 10, 30, 30]], [0.5], [1])}
    result, ann_file = evaluate(tmp_path, by_size)
    hand_results = [  # the same predictions as COCO results, written out by hand: [x, y, width, height]
        {"image_id": 1, "category_id": 1, "bbox": [9, 11, 20, 16], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [36, 30, 20, 20], "score": 0.8},
        {"image_id": 1, "category_id": 2, "bbox": [37, 31, 18, 18], "score": 0.6},
        {"image_id": 1, "category_id": 2, "bbox": [0, 40, 10, 20], "score": 0.7},
        {"image_id": 2, "category_id": 1, "bbox": [2, 6, 38, 24], "score": 0.95},
        {"image_id": 3, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.5}]
    stats = pycocotools_stats(ann_file, hand_results)
    assert result["count"] == 3
    assert result["map"] == pytest.approx(stats[0], abs=1e-12)
    assert result["map50"] == pytest.approx(stats[1], abs=1e-12)
    assert result["map75"] == pytest.approx(stats[2], abs=1e-12)
    assert 0.0 < result["map"] < 1.0


def test_perfect_predictions_score_one_and_a_missed_box_scores_51_of_101(tmp_path):
    perfect = {(64, 64): prediction([[8, 10, 28, 26], [36, 30, 56, 50]], [0.9, 0.8], [1, 2]),
               (64, 48): prediction([[4, 4, 44, 34]], [0.9], [1]),
               (48, 64): prediction([], [], [])}
    result, _ = evaluate(tmp_path / "a", perfect)
    assert result["map"] == pytest.approx(1.0) and result["map50"] == pytest.approx(1.0)
    # category 1's box of image 2 missed: category 1 has recall 1/2 at precision 1, so of COCO's 101 recall
    # points 0, .01, ..., .5 have precision 1 and the rest 0 -> AP 51/101; category 2 stays at 1
    missed = {**perfect, (64, 48): prediction([], [], [])}
    result, _ = evaluate(tmp_path / "b", missed)
    assert result["map"] == pytest.approx((51 / 101 + 1.0) / 2)
    # a false positive ranked above the only true positive of category 2: precision 1/2 at every recall -> 0.5
    ranked = {**perfect, (64, 64): prediction([[8, 10, 28, 26], [0, 0, 10, 10], [36, 30, 56, 50]],
                                              [0.9, 0.95, 0.8], [1, 2, 2])}
    result, _ = evaluate(tmp_path / "c", ranked)
    assert result["map"] == pytest.approx((1.0 + 0.5) / 2)


def test_mask_map_of_mask_outputs(tmp_path):
    def square_mask(height, width, x1, y1, x2, y2):
        mask = torch.zeros(1, height, width)
        mask[:, y1:y2, x1:x2] = 1.0
        return mask

    # masks exactly the squares' polygons; the triangle's mask a filled box (IoU of triangle vs its box: 1/2)
    masks1 = torch.stack([square_mask(64, 64, 8, 10, 28, 26), square_mask(64, 64, 36, 30, 56, 50)])
    by_size = {(64, 64): prediction([[8, 10, 28, 26], [36, 30, 56, 50]], [0.9, 0.8], [1, 2], masks1),
               (64, 48): prediction([[4, 4, 44, 34]], [0.9], [1], square_mask(64, 48, 4, 4, 44, 34)[None]),
               (48, 64): prediction([], [], [], torch.zeros(0, 1, 48, 64))}
    task = DetectionTask()
    img_dir, ann_file = write_coco(str(tmp_path))
    dataset = CocoDetectionDataset(img_dir, ann_file, DetectionCompose([ImageToTensor()]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=detection_collate)
    result = task.evaluate(FixedPredictions(by_size), loader, DistContext())
    assert "mask_map" in task.metrics and result["map"] == pytest.approx(1.0)
    from pycocotools import mask as mask_api
    import numpy as np

    def rle(mask):
        encoded = mask_api.encode(np.asfortranarray(mask[0].numpy().astype(np.uint8)))
        encoded["counts"] = encoded["counts"].decode()
        return encoded

    hand = [{"image_id": 1, "category_id": 1, "segmentation": rle(masks1[0]), "score": 0.9},
            {"image_id": 1, "category_id": 2, "segmentation": rle(masks1[1]), "score": 0.8},
            {"image_id": 2, "category_id": 1, "segmentation": rle(square_mask(64, 48, 4, 4, 44, 34)), "score": 0.9}]
    stats = pycocotools_stats(ann_file, hand, "segm")
    assert result["mask_map"] == pytest.approx(stats[0], abs=1e-12)
    assert result["mask_map50"] == pytest.approx(stats[1], abs=1e-12)
    assert result["mask_map"] < 1.0  # the triangle's box-shaped mask is not a match at high IoU


def test_summary_names_the_numbers(tmp_path):
    text = DetectionTask().summary({"map": 0.5, "map50": 0.75, "map75": 0.5, "count": 3})
    assert text == "bbox mAP@[.5:.95] 0.5000 mAP@.5 0.7500 on 3 images"


def test_missing_pycocotools_names_the_extra_when_a_detection_run_starts(monkeypatch):
    for name in ("pycocotools", "pycocotools.coco", "pycocotools.cocoeval", "pycocotools.mask"):
        monkeypatch.setitem(sys.modules, name, None)
    from distillkit.tasks import resolve_task

    with pytest.raises(DistillkitError) as caught:  # when the run's task is chosen, before anything is built
        resolve_task({"models": {"student_model": {"name": "fasterrcnn_resnet50_fpn"}}})
    assert "pip install 'distillkit[detection]'" in str(caught.value)


HAND_PREDICTIONS = {(64, 64): ([[9, 11, 29, 27], [37, 31, 55, 49]], [0.9, 0.6], [1, 2]),
                    (64, 48): ([[2, 6, 40, 30]], [0.95], [1]), (48, 64): ([[10, 10, 30, 30]], [0.5], [1])}


def _rank_evaluates_its_share(rank, world_size, root, port, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        img_dir, ann_file = write_coco(root)
        dataset = CocoDetectionDataset(img_dir, ann_file)
        share = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world_size)))
        loader = torch.utils.data.DataLoader(share, batch_size=1, collate_fn=detection_collate)
        model = FixedPredictions({k: prediction(*v) for k, v in HAND_PREDICTIONS.items()})
        result = DetectionTask().evaluate(model, loader, DistContext(rank, rank, world_size))
        torch.save(result, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_ranks_gather_their_predictions_into_the_one_process_result(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = str(tmp_path / "result")
    mp.spawn(_rank_evaluates_its_share, args=(2, str(tmp_path / "data"), port, out), nprocs=2)
    single, _ = evaluate(tmp_path / "single", {k: prediction(*v) for k, v in HAND_PREDICTIONS.items()})
    for rank in (0, 1):  # every rank gets rank 0's numbers over all 3 images
        assert torch.load(f"{out}.{rank}") == single and single["count"] == 3
