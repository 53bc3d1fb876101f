"""Semantic segmentation: metrics against torchvision's reference formulas, joint transforms against torchdistill's
draws, the datasets of each layout against masks stated by hand, the task, collate and the poly schedule."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from distillkit.errors import ConfigError
from distillkit.registry import COLLATE_FNS, DATASETS
from distillkit.tasks import resolve_task, summarize
from distillkit.tasks.segmentation import ConfusionMatrix, SegmentationTask
from distillkit.tasks.segmentation.transforms import (CustomCompose, CustomRandomCrop, CustomRandomHorizontalFlip,
                                                      CustomRandomResize, CustomToTensor)
from tests.seg_layouts import SIZE, make_coco, make_folder, make_voc, mask_of


def reference_scores(target, pred, num_classes):
    """torchvision references/segmentation/utils.py ConfusionMatrix, re-derived: h[t, p] over pixels with
    0 <= t < n; acc_global = diag.sum() / h.sum(); iu = diag / (h.sum(1) + h.sum(0) - diag); mIoU = iu.mean()."""
    h = np.zeros((num_classes, num_classes))
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if 0 <= t < num_classes:
            h[t, p] += 1
    diag = np.diag(h)
    iu = diag / (h.sum(1) + h.sum(0) - diag)
    return 100 * diag.sum() / h.sum(), 100 * iu.mean(), 100 * iu


def test_miou_and_pixel_accuracy_equal_torchvisions_formulas_ignoring_255():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1], [0, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1], [0, 2, 1, 2]])
    matrix = ConfusionMatrix(3)
    matrix.update(target[:2], pred[:2])  # two updates sum as one
    matrix.update(target[2:], pred[2:])
    result = matrix.compute()
    acc, miou, iu = reference_scores(target.numpy(), pred.numpy(), 3)
    # worked out by hand too: 10 counted pixels, 7 right; IoU 2/4, 3/5, 2/4
    assert result["pixel_acc"] == pytest.approx(70.0) == pytest.approx(acc)
    assert result["iou"] == pytest.approx([50.0, 60.0, 50.0]) and result["iou"] == pytest.approx(list(iu))
    assert result["miou"] == pytest.approx(miou) == pytest.approx(160 / 3)
    assert result["pixels"] == 10 and result["absent_classes"] == []


def test_a_class_absent_everywhere_is_left_out_of_the_mean_and_named():
    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
    result = matrix.compute()
    assert result["absent_classes"] == [2] and result["miou"] == pytest.approx(100 * (1 / 2 + 1 / 2) / 2)


class FixedPrediction(torch.nn.Module):
    """A 'model' whose logits put the highest score on a given class map (per image of the batch)."""

    def __init__(self, maps, num_classes):
        super().__init__()
        self.maps, self.num_classes, self.calls = maps, num_classes, 0

    def forward(self, images):
        batch = self.maps[self.calls:self.calls + images.shape[0]]
        self.calls += images.shape[0]
        logits = torch.nn.functional.one_hot(batch, self.num_classes).permute(0, 3, 1, 2).float()
        return {"out": logits, "aux": -logits}


def test_task_evaluates_padded_batches_like_the_reference():
    """Two images of different sizes, padded by the collate (mask 255 is not counted); predictions by hand."""
    from types import SimpleNamespace

    targets = [torch.tensor([[0, 1], [1, 1]]), torch.tensor([[2, 2, 0], [0, 1, 255]])]
    preds = [torch.tensor([[0, 1, 2], [1, 0, 2]]), torch.tensor([[2, 1, 0], [0, 1, 1]])]
    samples = [(torch.zeros(3, *t.shape), t) for t in targets]
    images, masks, supp = COLLATE_FNS["coco_seg_eval_collate_fn"](samples)
    assert images.shape == (2, 3, 2, 3) and masks[0, :, 2].tolist() == [255, 255] and supp == {}
    task = resolve_task({}, "segmentation")
    ctx = SimpleNamespace(device=torch.device("cpu"), distributed=False)
    result = task.evaluate(FixedPrediction(torch.stack(preds), 3), [(images, masks, supp)], ctx)
    counted_t = torch.cat([targets[0].flatten(), targets[1].flatten()])
    counted_p = torch.cat([preds[0][:, :2].flatten(), preds[1].flatten()])
    acc, miou, _ = reference_scores(counted_t.numpy(), counted_p.numpy(), 3)
    assert result["pixel_acc"] == pytest.approx(acc) and result["miou"] == pytest.approx(miou)
    assert result["count"] == 2
    assert summarize(result) == f"mIoU {miou:.2f}%, pixel accuracy {acc:.2f}% on 2 images"


def test_joint_transforms_make_torchdistills_draws():
    """torchdistill's steps re-derived with torchvision's functional ops and the same draws: the resize size is
    random.randint(min, max) (shorter side), the flip random.random() < p, the crop RandomCrop.get_params after
    padding right/bottom (image 0, mask 255); the mask is resized by nearest neighbour."""
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    mask = Image.fromarray(mask_of(1)[:30, :40])
    steps = CustomCompose([CustomRandomResize(20, 50), CustomRandomHorizontalFlip(0.5), CustomRandomCrop(48),
                           CustomToTensor()])
    for seed in range(4):
        random.seed(seed)
        torch.manual_seed(seed)
        out_image, out_mask = steps(image, mask)
        random.seed(seed)
        torch.manual_seed(seed)
        size = random.randint(20, 50)
        img, tgt = F.resize(image, size), F.resize(mask, size, interpolation=InterpolationMode.NEAREST)
        if random.random() < 0.5:
            img, tgt = F.hflip(img), F.hflip(tgt)
        w, h = img.size
        pad = [0, 0, max(48 - w, 0), max(48 - h, 0)]
        img, tgt = F.pad(img, pad, fill=0), F.pad(tgt, pad, fill=255)
        box = T.RandomCrop.get_params(img, (48, 48))
        expected_image = F.to_tensor(F.crop(img, *box))
        expected_mask = torch.as_tensor(np.array(F.crop(tgt, *box)), dtype=torch.int64)
        assert torch.equal(out_image, expected_image) and torch.equal(out_mask, expected_mask)
        assert out_mask.shape == (48, 48) and set(out_mask.unique().tolist()) <= {0, 2, 15, 255}


def test_voc_layout_through_a_torchdistill_0x_split(tmp_path):
    from distillkit.data.datasets import build_split

    make_voc(str(tmp_path))
    block = {"dataset_id": "voc/train", "params": {
        "root": str(tmp_path), "image_set": "train", "year": "2012", "download": False,
        "transforms_compose_cls": "CustomCompose",
        "transforms_params": [{"type": "CustomToTensor", "params": None}]}}
    dataset = build_split("VOCSegmentation", "type", block, "datasets.voc.splits.train")
    image, mask = dataset[2]
    assert image.shape == (3, SIZE, SIZE) and torch.equal(mask, torch.from_numpy(mask_of(2)).long())


def test_coco_layout_masks_equal_the_hand_made_ones(tmp_path):
    """Polygons and an uncompressed RLE rasterised, classes renumbered by torchdistill's VOC list, a category
    outside it dropped (its pixels background)."""
    make_coco(str(tmp_path), splits=("train2017",))
    dataset = DATASETS["coco_dataset"](str(tmp_path / "train2017"), str(tmp_path / "annotations" /
                                                                         "instances_train2017.json"),
                                       annotated_only=True, is_segment=True)
    assert len(dataset) == 4
    for index in (0, 1):
        expected = mask_of(index).astype(np.int64)
        expected[0, :] = 0  # the 255 row is not in the json
        assert torch.equal(dataset[index][1], torch.from_numpy(expected))


def test_a_cocodetect_split_with_transform_params_names_the_key_torchdistill_reads(tmp_path):
    """torchdistill's legacy coco2017 fcn_resnet50 config writes transform_params: torchdistill 0.3.3 ignores it
    and its PIL images then fail in coco_seg_collate_fn; here the key and the rename are named."""
    from distillkit.data.datasets import build_split

    make_coco(str(tmp_path), splits=("train2017",))
    block = {"dataset_id": "coco/train", "images": str(tmp_path / "train2017"), "is_segment": True,
             "annotations": str(tmp_path / "annotations" / "instances_train2017.json"), "annotated_only": True,
             "transform_params": [{"type": "CustomToTensor", "params": None}]}
    with pytest.raises(ConfigError) as info:
        build_split("cocodetect", "datasets.coco.type", block, "datasets.coco.splits.train")
    assert "datasets.coco.splits.train.transform_params" in str(info.value) and "transforms_params" in str(info.value)
    block["transforms_params"] = block.pop("transform_params")
    assert build_split("cocodetect", "datasets.coco.type", block, "datasets.coco.splits.train")[0][0].shape[0] == 3


def test_coco_overlapping_instances_become_255(tmp_path):
    import json

    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    poly = [[0, 0, 6, 0, 6, 6, 0, 6]], [[3, 3, 8, 3, 8, 8, 3, 8]]
    anns = [{"id": i + 1, "image_id": 1, "category_id": c, "bbox": [0, 0, 6, 6], "iscrowd": 0, "segmentation": p}
            for i, (c, p) in enumerate(zip((5, 1), poly))]
    (tmp_path / "ann.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "height": 8,
                                                               "width": 8}], "annotations": anns}))
    mask = DATASETS["CocoSegmentation"](str(tmp_path), str(tmp_path / "ann.json"))[0][1]
    expected = torch.zeros(8, 8, dtype=torch.int64)
    expected[:6, :6] = 1
    expected[3:, 3:] = 15
    expected[3:6, 3:6] = 255
    assert torch.equal(mask, expected)


def test_folder_pair_and_synthetic_shapes(tmp_path):
    make_folder(str(tmp_path))
    folder = DATASETS["SegmentationFolder"](str(tmp_path))
    assert len(folder) == 4 and torch.equal(folder[3][1], torch.from_numpy(mask_of(3)).long())
    with pytest.raises(ConfigError, match="masks"):
        DATASETS["SegmentationFolder"](str(tmp_path), masks="nowhere")
    shapes = DATASETS["SyntheticShapes"](num_samples=3, image_size=32)
    image, mask = shapes[1]
    assert image.shape == (3, 32, 32) and set(mask.unique().tolist()) <= {0, 1, 2, 3} and mask.max() > 0
    assert torch.equal(mask, DATASETS["SyntheticShapes"](num_samples=3, image_size=32)[1][1])  # same every time
    assert not torch.equal(mask, DATASETS["SyntheticShapes"](split="val", num_samples=3, image_size=32)[1][1])


def test_the_task_claims_torchdistills_segmentation_configs():
    assert isinstance(resolve_task({"models": {"model": {"name": "deeplabv3_resnet50"}}}), SegmentationTask)
    coco0x = {"models": {"model": {"name": "custom_net"}},
              "datasets": {"coco": {"type": "cocodetect", "splits": {"train": {"is_segment": True}}}}}
    assert isinstance(resolve_task(coco0x), SegmentationTask)
    coco0x["datasets"]["coco"]["splits"]["train"]["is_segment"] = False
    assert not isinstance(resolve_task(coco0x), SegmentationTask)
    assert not isinstance(resolve_task({"models": {"model": {"name": "resnet18"}}}), SegmentationTask)


def test_torchvision_models_take_torchdistill_0x_params_and_offline_errors_say_what_to_do(monkeypatch):
    import urllib.error

    from distillkit.models.builder import build_model

    model = build_model({"name": "lraspp_mobilenet_v3_large", "params": {
        "pretrained": False, "pretrained_backbone": False, "num_classes": 5}}, "models.student_model")
    assert model(torch.zeros(1, 3, 32, 32))["out"].shape == (1, 5, 32, 32)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ConfigError, match="pretrained_backbone: False") as caught:
        build_model({"name": "lraspp_mobilenet_v3_large", "params": {"pretrained": False, "num_classes": 5,
                                                                      "pretrained_backbone": True}},
                    "models.student_model")
    assert caught.value.key_path == "models.student_model.params"


def test_poly_lr_fills_the_iterations_of_an_epoch():
    from distillkit.config.schema import SchedulerSettings
    from distillkit.engine.optim import build_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    settings = SchedulerSettings.parse({"type": "poly_lr_scheduler", "params": {
        "num_iterations": "None", "num_epochs": 2, "power": 0.9}, "scheduling_step": 1}, "train.scheduler")
    scheduler = build_scheduler(settings, optimizer, num_epochs=2, steps_per_epoch=5)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * (1 - 3 / 10) ** 0.9)
