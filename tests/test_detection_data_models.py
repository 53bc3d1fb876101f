"""Detection data and models: COCO json -> targets (boxes x1y1x2y2, masks from polygons), transforms that move
boxes with the image, the variable-size collate, aspect-ratio groups, GHND's bottleneck R-CNN and HeadRCNN."""
import pytest
import torch

pytest.importorskip("pycocotools")

from detection_data import write_coco  # noqa: E402
from distillkit.tasks.coco import coco_dataset  # noqa: E402
from distillkit.tasks.detection.coco_dataset import CocoDetectionDataset  # noqa: E402
from distillkit.tasks.detection.collate import detection_collate  # noqa: E402
from distillkit.tasks.detection.head_rcnn import HeadRCNN  # noqa: E402
from distillkit.tasks.detection.models import custom_fasterrcnn_resnet_fpn  # noqa: E402
from distillkit.data.grouped_batches import create_aspect_ratio_groups  # noqa: E402
from distillkit.tasks.detection.transforms import RandomHorizontalFlip, Resize  # noqa: E402


def test_coco_targets_boxes_masks_and_annotated_only(tmp_path):
    img_dir, ann_file = write_coco(str(tmp_path))
    dataset = coco_dataset(img_dir, ann_file, annotated_only=False)
    assert len(dataset) == 3
    image, target = dataset[0]
    assert image.shape == (3, 64, 64) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert target["boxes"].tolist() == [[8, 10, 28, 26], [36, 30, 56, 50]]  # [x, y, w, h] -> [x1, y1, x2, y2]
    assert target["labels"].tolist() == [1, 2] and int(target["image_id"]) == 1
    square, triangle = target["masks"]
    assert int(square.sum()) == 20 * 16  # the polygon's pixels: the box
    assert int(square[10:26, 8:28].sum()) == 320
    assert abs(int(triangle.sum()) - 200) <= 20  # half its 20 x 20 box, up to the rasterised edge
    assert len(coco_dataset(img_dir, ann_file, annotated_only=True)) == 2  # image 3 has no annotation
    # w/h 1, 0.75, 1.33 against edges [0.5, 1, 2], bisect_right (torchvision): 1.0 lies right of the edge 1
    assert create_aspect_ratio_groups(dataset, 1) == [2, 1, 2]


def test_flip_and_resize_move_the_boxes():
    image = torch.zeros(3, 20, 40)
    target = {"boxes": torch.tensor([[4.0, 2.0, 10.0, 8.0]]), "masks": torch.zeros(1, 20, 40, dtype=torch.uint8)}
    target["masks"][0, 2:8, 4:10] = 1
    flipped_image, flipped = RandomHorizontalFlip(1.0)(image, target)
    assert flipped["boxes"].tolist() == [[30.0, 2.0, 36.0, 8.0]]  # x -> W - x, for x1 and x2 swapped
    assert flipped["masks"][0, 2:8, 30:36].all() and int(flipped["masks"].sum()) == 36
    assert target["boxes"].tolist() == [[4.0, 2.0, 10.0, 8.0]]  # the input target is untouched
    resized_image, resized = Resize((10, 80))(image, target)
    assert resized_image.shape == (3, 10, 80)
    assert resized["boxes"].tolist() == [[8.0, 1.0, 20.0, 4.0]]  # x scaled by 2, y by 1/2
    assert resized["masks"].shape == (1, 10, 80)


def test_collate_keeps_variable_sizes(tmp_path):
    img_dir, ann_file = write_coco(str(tmp_path))
    dataset = CocoDetectionDataset(img_dir, ann_file)
    images, targets, supp = detection_collate([dataset[0], dataset[1]])
    assert [tuple(i.shape) for i in images] == [(3, 64, 64), (3, 64, 48)]
    assert [len(t["boxes"]) for t in targets] == [2, 1] and supp == {}


def tiny_ghnd(bottleneck_channel=3):
    backbone = {"name": "custom_resnet50", "params": {"trainable_backbone_layers": 6, "layer1": {
        "type": "Bottleneck4LargeResNet", "bottleneck_channel": bottleneck_channel}}}
    return custom_fasterrcnn_resnet_fpn(backbone, pretrained=False, pretrained_backbone=False, num_classes=3,
                                        min_size=64, max_size=64)


def test_bottleneck_replaces_layer1_with_the_same_output_shape_and_headrcnn_hooks_it():
    model = tiny_ghnd().eval()
    body = model.backbone.body
    assert hasattr(body.layer1, "encoder") and hasattr(body.layer1, "decoder")
    assert body.layer1.encoder[-1].out_channels == 3  # the bottleneck
    x = torch.rand(2, 64, 16, 16)
    assert body.layer1(x).shape == (2, 256, 16, 16)  # what ResNet-50's layer1 gives its layer2
    # no pretrained weights anywhere: torchdistill 0.3.3 then trains 5 of layer4 .. conv1
    assert not body.conv1.weight.requires_grad and body.bn1.weight.requires_grad is False
    assert all(p.requires_grad for p in body.layer1.parameters())
    head = HeadRCNN(model, head_rcnn={"sequential": ["backbone.body"]})
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]
    features = head(images)
    assert list(features) == ["0", "1", "2", "3"] and features["0"].shape == (2, 256, 16, 16)
    assert dict(head.named_modules())["seq.backbone.body.layer1"] is body.layer1


def test_a_detector_trains_on_its_own_loss_dict(tmp_path, write_yaml):
    from distillkit import build_experiment, load_config
    from distillkit.engine.trainer import Trainer

    path = write_yaml("""
        datasets:
          shapes:
            type: 'ShapesDetection'
            splits:
              train: {dataset_id: 'shapes/train', params: {num_images: 4, image_size: 32, seed: 0}}
        models:
          student_model:
            name: 'shapes_fasterrcnn'
            params: {num_classes: 4, width: 8, depth: 1, out_channels: 8, image_size: 32}
        train:
          num_epochs: 1
          train_data_loader: {dataset_id: 'shapes/train', batch_size: 2}
          optimizer: {type: 'SGD', params: {lr: 0.01}}
          criterion:
            type: 'GeneralizedCustomLoss'
            func2extract_org_loss: 'extract_org_loss_dict'
            org_term: {factor: 1.0}
        """)
    exp = build_experiment(load_config(path))
    assert exp.task.name == "detection" and exp.student.forward_proc == "forward_batch_target"
    images, targets, _ = next(iter(exp.train_loader))
    assert isinstance(images, list) and isinstance(targets[0], dict)
    torch.manual_seed(0)
    loss, terms, _, _ = Trainer(exp).forward(images, targets)
    torch.manual_seed(0)
    exp.student.model.train()
    losses = exp.student.model(images, targets)  # the detector's own loss dict, summed: the org term
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert loss.item() == pytest.approx(sum(v.item() for v in losses.values()), rel=1e-5)


def test_a_missing_coco_folder_names_the_key_the_config_writes(tmp_path, write_yaml):
    from distillkit.config.loader import load_yaml_file
    from distillkit.data.datasets import build_datasets, build_split
    from distillkit.errors import ConfigError

    img_dir, ann_file = write_coco(str(tmp_path))
    block = {"dataset_id": "coco/train", "images": str(tmp_path / "nowhere"), "annotations": ann_file}
    with pytest.raises(ConfigError) as info:  # 0.x: a cocodetect split's own key
        build_split("cocodetect", "datasets.coco.type", block, "datasets.coco.splits.train")
    assert "key 'datasets.coco.splits.train.images'" in str(info.value) and "does not exist" in str(info.value)
    path = write_yaml(f"""
        datasets:
          coco/train: !import_call
            key: 'coco.dataset.coco_dataset'
            init: {{kwargs: {{img_dir_path: '{img_dir}', ann_file_path: '{tmp_path}/missing.json'}}}}
        """)
    with pytest.raises(ConfigError) as info:  # 1.x: the keyword of the !import_call
        build_datasets(load_yaml_file(path)[0])
    assert "key 'datasets.coco/train.init.kwargs.ann_file_path'" in str(info.value)
