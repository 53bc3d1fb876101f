"""The loader's ``decode: fast`` path (and the code of ``cuda``/``dali`` that runs without a GPU).

What is checked, on generated JPEGs:

* parameters: with the same seed the fast path draws exactly torchvision's crop boxes and flips; with
  independent seeds the box areas, aspect ratios and the flip rate follow RandomResizedCrop's distribution
  (two-sample Kolmogorov-Smirnov at alpha = 0.001, flip rate within 4 sigma);
* pixels, compared in grey levels of 255 against the torchvision path on the same parameters: at most 1
  grey level anywhere when the JPEG is decoded at full size (ImageNet-sized images, every crop: only the
  resampling's rounding differs, PIL vs torch); with a reduced-size decode (DCT scaling 1/2, 1/4) mean
  <= 2.5 and 99th percentile <= 8 grey levels (DCT-domain averaging instead of the antialias filter);
* uint8 batches become the default path's float batch on the device (channels_last when set);
* the teacher cache records and replays fast views exactly; GPU backends are refused without CUDA.
"""
import io
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from distillkit.config.schema import LoaderSettings
from distillkit.data import build_datasets, build_loader, jpeg
from distillkit.data.device_batch import UInt8Batch, normalize_uint8
from distillkit.data.fast_decode import DecodePipeline, ViewDecoder
from distillkit.data.replay import ReplayPlan
from distillkit.engine.speed import SpeedSettings
from distillkit.errors import ConfigError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GREY = torch.tensor(STD)[:, None, None] * 255  # normalised units -> grey levels


def train_view(size=224, **crop):
    return T.Compose([T.RandomResizedCrop(size, **crop), T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


def make_jpeg(width, height, seed=0, quality=90) -> bytes:
    """Smooth colour fields with fine texture (JPEG-realistic; the texture makes resampling differences show)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 24 + 2, width // 24 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
    pixels = base + rng.normal(0, 14, (height, width, 1)) + rng.normal(0, 6, (height, width, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def jpeg_folder(root, sizes, per_class=4, classes=2):
    for c in range(classes):
        os.makedirs(os.path.join(root, f"c{c}"), exist_ok=True)
        for i in range(per_class):
            width, height = sizes[(c * per_class + i) % len(sizes)]
            with open(os.path.join(root, f"c{c}", f"{i}.jpg"), "wb") as handle:
                handle.write(make_jpeg(width, height, seed=c * 100 + i))
    return str(root)


def grey_levels(fast_view: torch.Tensor, spec, reference: torch.Tensor) -> torch.Tensor:
    """|fast - reference| per pixel and channel, in grey levels (fast view: uint8 HWC)."""
    out = normalize_uint8(fast_view.permute(2, 0, 1).unsqueeze(0), spec)[0]
    return ((out - reference).abs() * GREY).flatten()


def ks_statistic(a, b) -> float:
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    cdf_a, cdf_b = np.searchsorted(a, grid, "right") / len(a), np.searchsorted(b, grid, "right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def test_same_seed_draws_torchvision_parameters_and_views():
    transform = train_view(224)
    decoder, plan = ViewDecoder(transform, "fast", "k"), ReplayPlan(transform)
    data = make_jpeg(500, 375)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    for seed in range(8):
        torch.manual_seed(seed)
        expected = transform(image)
        torch.manual_seed(seed)
        _, expected_params = plan.sample(image)
        torch.manual_seed(seed)
        view, params = decoder.sample(data)
        assert params == expected_params
        assert view.dtype == torch.uint8 and view.shape == (224, 224, 3)
        assert grey_levels(view, decoder.pipeline.spec, expected).max() <= 1.001


def test_crop_boxes_and_flips_follow_random_resized_crop():
    """Independent seeds: the fast path's boxes and flips against torchvision's get_params and flip."""
    width, height, n = 500, 375, 3000
    rrc = T.RandomResizedCrop(224)
    pipeline = DecodePipeline(train_view(224), "k")
    assert jpeg.image_size(make_jpeg(width, height)) == (width, height)
    torch.manual_seed(1)
    fast = [pipeline.draw(width, height) for _ in range(n)]
    torch.manual_seed(2)
    reference = [list(rrc.get_params(Image.new("RGB", (width, height)), rrc.scale, rrc.ratio))
                 + [int(torch.rand(1) < 0.5)] for _ in range(n)]
    critical = 1.95 * math.sqrt(2 / n)  # two-sample KS, alpha = 0.001
    for stat in (lambda p: p[2] * p[3] / (width * height), lambda p: math.log(p[3] / p[2]),
                 lambda p: (p[0] + p[2] / 2) / height, lambda p: (p[1] + p[3] / 2) / width):
        assert ks_statistic([stat(p) for p in fast], [stat(p) for p in reference]) < critical
    assert all(0 <= p[0] and p[0] + p[2] <= height and 0 <= p[1] and p[1] + p[3] <= width for p in fast)
    flip_rate = sum(p[4] for p in fast) / n
    assert abs(flip_rate - 0.5) < 4 * math.sqrt(0.25 / n)
    # and the flip really mirrors the view
    data = make_jpeg(width, height)
    decoder = ViewDecoder(train_view(224), "fast", "k")
    assert torch.equal(decoder.replay(data, [10, 20, 300, 280, 1]), decoder.replay(data, [10, 20, 300, 280, 0]).flip(1))


@pytest.mark.parametrize("backend", jpeg.available_backends())
def test_pixels_at_full_size_decode_within_one_grey_level(backend, monkeypatch):
    monkeypatch.setenv("DISTILLKIT_JPEG_BACKEND", backend)
    transform = train_view(224)
    decoder, plan = ViewDecoder(transform, "fast", "k"), ReplayPlan(transform)
    for k, (width, height) in enumerate([(500, 375), (375, 500), (500, 333)]):
        data = make_jpeg(width, height, seed=k)
        image = Image.open(io.BytesIO(data)).convert("RGB")
        for seed in range(4):
            torch.manual_seed(seed)
            params = decoder.pipeline.draw(width, height)
            assert decoder.pipeline.reduction(*decoder.pipeline.layout(width, height, params)[:2]) == 1
            assert grey_levels(decoder.replay(data, params), decoder.pipeline.spec,
                               plan.replay(image, params)).max() <= 1.001


def test_reduced_size_decode_within_tolerance():
    data = make_jpeg(1600, 1200, seed=3)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    for transform, params, reduction in (
            (train_view(224), [100, 200, 1000, 1000, 0], 4),
            (train_view(224), [0, 0, 500, 500, 1], 2),
            (train_view(224), [10, 10, 1190, 1590, 0], 4),
            (T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)]), [], 4)):
        decoder = ViewDecoder(transform, "fast", "k")
        assert decoder.pipeline.reduction(*decoder.pipeline.layout(1600, 1200, params)[:2]) == reduction
        reference = ReplayPlan(transform).replay(image, params)
        diff = grey_levels(decoder.replay(data, params), decoder.pipeline.spec, reference)
        assert diff.mean() <= 2.5 and diff.quantile(0.99) <= 8, (params, diff.mean(), diff.quantile(0.99))


def test_validation_view_resize_center_crop():
    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    decoder = ViewDecoder(transform, "fast", "k")
    for width, height in ((500, 375), (375, 500)):
        data = make_jpeg(width, height)
        reference = transform(Image.open(io.BytesIO(data)).convert("RGB"))
        assert decoder.pipeline.reduction(*decoder.pipeline.layout(width, height, [])[:2]) == 1
        assert grey_levels(decoder.sample(data)[0], decoder.pipeline.spec, reference).max() <= 1.001


def test_loader_batches_are_uint8_and_normalise_on_the_device(tmp_path):
    root = jpeg_folder(tmp_path / "train", [(120, 90), (90, 120)])
    spec = [{"type": "RandomResizedCrop", "params": {"size": 48}}, {"type": "RandomHorizontalFlip"},
            {"type": "ToTensor"}, {"type": "Normalize", "params": {"mean": list(MEAN), "std": list(STD)}}]
    datasets = build_datasets({"datasets": {"d": {"type": "ImageFolder", "splits": {"train": {
        "dataset_id": "d/train", "params": {"root": root, "transform_params": spec}}}}}})
    batches = {}
    for decode in ("pil", "fast"):
        settings = LoaderSettings.parse({"dataset_id": "d/train", "batch_size": 8, "decode": decode},
                                        "train.train_data_loader")
        loader = build_loader(settings, datasets, training=True, seed=3)
        torch.manual_seed(0)
        batches[decode] = next(iter(loader))
    images, targets, _ = batches["fast"]
    assert isinstance(images, UInt8Batch) and images.shape == (8, 3, 48, 48) and images.nhwc.dtype == torch.uint8
    assert torch.equal(targets, batches["pil"][1])
    on_device = SpeedSettings(channels_last=True).to_device(images, "cpu")
    assert on_device.dtype == torch.float32 and on_device.is_contiguous(memory_format=torch.channels_last)
    assert ((on_device - batches["pil"][0]).abs() * GREY).max() <= 1.001
    plain = images.to("cpu", non_blocking=True)  # what evaluation calls
    assert plain.is_contiguous() and torch.equal(plain, on_device)


def test_teacher_cache_replays_fast_views_exactly(tmp_path):
    from distillkit.data.samplers import ReplaySampler

    root = jpeg_folder(tmp_path / "train", [(120, 90)], per_class=3)
    transform_params = [{"type": "RandomResizedCrop", "params": {"size": 32}}, {"type": "RandomHorizontalFlip"},
                        {"type": "ToTensor"}]
    datasets = build_datasets({"datasets": {"d": {"type": "ImageFolder", "splits": {"train": {
        "dataset_id": "d/train", "params": {"root": root, "transform_params": transform_params}}}}}})
    plan = ReplayPlan(datasets["d/train"].transform)
    settings = LoaderSettings.parse({"dataset_id": "d/train", "batch_size": 4, "decode": "fast"}, "train.x")
    loader = build_loader(settings, datasets, training=True, replay_plan=plan)
    assert plan.signature[-1] == "decode: fast"  # a record is replayed only by the decoder that made it
    assert isinstance(loader.sampler, ReplaySampler)
    recorded = list(loader)  # recording pass: fresh parameters
    rows = [(int(i), p.tolist(), row) for row, (i, p) in enumerate(
        (i, p) for _, _, supp in recorded for i, p in zip(supp["index"], supp["params"]))]
    loader.sampler.rows = rows
    torch.manual_seed(999)  # a replay draws no random numbers
    replayed = list(loader)
    assert len(replayed) == len(recorded)
    for (a, ta, sa), (b, tb, sb) in zip(recorded, replayed):
        assert torch.equal(a.nhwc, b.nhwc) and torch.equal(ta, tb) and torch.equal(sa["params"], sb["params"])


def test_teacher_cache_trains_on_replayed_fast_views(tmp_path, write_yaml):
    """End to end: record an epoch with decode: fast, replay it without the teacher, same weights bit for bit."""
    from distillkit.config import load_config
    from distillkit.engine.trainer import Trainer
    from distillkit.experiment import build_experiment
    from distillkit.models import build_model
    from distillkit.runner import seed_everything

    root = jpeg_folder(tmp_path / "train", [(40, 30), (30, 40)], per_class=8)
    torch.manual_seed(123)
    ckpt = str(tmp_path / "teacher.pt")
    torch.save({"model": build_model({"name": "cifar_resnet8", "params": {"num_classes": 2}}, "m").state_dict()}, ckpt)
    text = f"""
datasets:
  d:
    type: ImageFolder
    splits:
      train:
        dataset_id: d/train
        params:
          root: {root}
          transform_params:
            - {{type: RandomResizedCrop, params: {{size: 16}}}}
            - {{type: RandomHorizontalFlip}}
            - {{type: ToTensor}}
            - {{type: Normalize, params: {{mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}}}}
models:
  teacher_model: {{name: cifar_resnet8, params: {{num_classes: 2}}, ckpt: {ckpt}}}
  student_model: {{name: cifar_resnet8, params: {{num_classes: 2}}, experiment: s}}
train:
  num_epochs: 1
  train_data_loader: {{dataset_id: d/train, batch_size: 4, decode: fast}}
  optimizer: {{type: SGD, params: {{lr: 0.1}}}}
  criterion:
    type: GeneralizedCustomLoss
    org_term: {{criterion: {{type: KDLoss, params: {{temperature: 4.0, alpha: 0.5}}}}, factor: 1.0}}
  teacher_cache: {{dir: {tmp_path / 'cache'}, top_k: null}}
"""
    config_path = write_yaml(text)

    def epoch(forbid_teacher):
        seed_everything(0)
        experiment = build_experiment(load_config(config_path), seed=0)
        if forbid_teacher:
            def no_forward(*args):
                raise AssertionError("the teacher ran during a replay")
            experiment.teacher.model.forward = no_forward
        row = Trainer(experiment).train_one_epoch(0)
        return row, experiment.student.model.state_dict()

    recorded_row, recorded = epoch(False)
    assert os.path.isfile(tmp_path / "cache" / "epoch_0000.rank0-of-1.pt")
    replayed_row, replayed = epoch(True)
    assert recorded_row["loss"] == replayed_row["loss"]
    assert all(torch.equal(recorded[k], replayed[k]) for k in recorded)


@pytest.mark.parametrize("mode", ["cuda", "dali"])
def test_gpu_backends_are_refused_without_cuda(tmp_path, mode):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    root = jpeg_folder(tmp_path / "train", [(40, 30)], per_class=1)
    datasets = build_datasets({"datasets": {"d": {"type": "ImageFolder", "splits": {"train": {
        "dataset_id": "d/train", "params": {"root": root, "transform_params": [
            {"type": "RandomResizedCrop", "params": {"size": 16}}, {"type": "ToTensor"}]}}}}}})
    settings = LoaderSettings.parse({"dataset_id": "d/train", "batch_size": 2, "decode": mode},
                                    "train.train_data_loader")
    with pytest.raises(ConfigError) as info:
        build_loader(settings, datasets, training=True)
    assert "train.train_data_loader.decode" in str(info.value) and "CUDA" in str(info.value)
    assert "decode: fast" in str(info.value)


def test_encoded_batches_decode_like_the_fast_path_on_cpu():
    """decode: cuda/dali batches (bytes + parameters, collated in the workers) sent to a CPU device go through
    the fast CPU path: the same tensor as decode: fast."""
    transform = train_view(32)
    fast, encoded = ViewDecoder(transform, "fast", "k"), ViewDecoder(transform, "cuda", "k")
    datas = [make_jpeg(90, 70, seed=s) for s in range(3)]
    params = [fast.pipeline.draw(90, 70) for _ in datas]
    fast_batch = fast.collate([(fast.replay(d, p), 0) for d, p in zip(datas, params)])[0]
    encoded_batch = encoded.collate([(encoded.replay(d, p), 0) for d, p in zip(datas, params)])[0]
    assert encoded_batch.shape == (3, 3, 32, 32) and encoded_batch.backend == "cuda"
    assert torch.equal(encoded_batch.to_device("cpu"), fast_batch.to_device("cpu"))


def test_pipelines_decode_fast_cannot_compute_are_refused():
    with pytest.raises(ConfigError) as info:
        DecodePipeline(T.Compose([T.RandomResizedCrop(8), T.ColorJitter(0.4), T.ToTensor()]), "train.x.decode")
    assert all(text in str(info.value) for text in ("train.x.decode", "ColorJitter", "decode: pil"))
    nearest = T.RandomResizedCrop(8, interpolation=T.InterpolationMode.NEAREST)
    with pytest.raises(ConfigError, match="NEAREST|nearest"):
        DecodePipeline(T.Compose([nearest, T.ToTensor()]), "k")


def test_jpeg_backends_decode_the_same_pixels():
    data = make_jpeg(123, 77, seed=5)
    reference = jpeg.decode(data, 1, "pil")
    for which in jpeg.available_backends():
        assert torch.equal(jpeg.decode(data, 1, which), reference), which
        assert tuple(jpeg.decode(data, 2, which).shape) == (39, 62, 3)
    gray = io.BytesIO()
    Image.fromarray(np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)).save(gray, format="JPEG", quality=90)
    gray_reference = jpeg.decode(gray.getvalue(), 1, "pil")
    assert gray_reference.shape == (48, 64, 3)
    for which in jpeg.available_backends():
        assert torch.equal(jpeg.decode(gray.getvalue(), 1, which), gray_reference), which
    png = io.BytesIO()
    Image.new("RGB", (10, 6), (1, 2, 3)).save(png, format="PNG")  # not a JPEG: Pillow reads it
    assert jpeg.image_size(png.getvalue()) == (10, 6) and jpeg.decode(png.getvalue()).shape == (6, 10, 3)
