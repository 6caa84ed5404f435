"""The GPU-resident data path must feed the network what the authors' PIL pipeline feeds it.

Each batched op is checked against its torchvision functional for fixed parameters, the parameter
samplers against torchvision's get_params distributions, and whole pipelines against
torchvision.transforms by comparing the per-pixel mean and spread of many augmented copies.
"""
import dataclasses
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gradattn import fastdata as fd
from gradattn.data.registry import get_info

TF = pytest.importorskip("torchvision.transforms.functional")
T = pytest.importorskip("torchvision.transforms")
Image = pytest.importorskip("PIL.Image")


def smooth_images(n, size, chans, seed=0):
    """Deterministic uint8 (n, size, size, chans) images: a gradient plus blobs, so shifts show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, chans), np.uint8)
    for i in range(n):
        for c in range(chans):
            cy, cx = rng.uniform(0.2, 0.8, 2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
            out[i, :, :, c] = np.clip(255 * (0.3 * xx + 0.7 * blob) + rng.integers(0, 20, (size, size)), 0, 255)
    return out


@pytest.fixture(scope="module")
def rgb():
    return fd.to_float_images(torch.from_numpy(smooth_images(4, 32, 3)))


def test_to_float_and_normalize_match_totensor_normalize_exactly():
    for chans, name in [(1, "fashionmnist"), (3, "cifar10")]:
        info = get_info(name)
        images = smooth_images(3, 28, chans)
        ours = fd.normalize_images(fd.to_float_images(torch.from_numpy(images)),
                                   torch.tensor(info.mean), torch.tensor(info.std))
        for i in range(3):
            pil = Image.fromarray(images[i, :, :, 0] if chans == 1 else images[i])
            ref = TF.normalize(TF.to_tensor(pil), info.mean, info.std)
            assert torch.equal(ours[i], ref)


def test_resize_matches_torchvision_resize_up_and_down(rgb):
    for size in (64, 20):
        ref = TF.resize(rgb, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        torch.testing.assert_close(fd.resize_images(rgb, size), ref, atol=1e-5, rtol=0)


def test_hflip_is_exact_where_masked(rgb):
    flip = torch.tensor([True, False, True, False])
    out = fd.hflip_images(rgb, flip)
    for i in range(4):
        assert torch.equal(out[i], TF.hflip(rgb[i]) if flip[i] else rgb[i])


def test_rotation_matches_torchvision_nearest_fill_zero(rgb):
    angles = torch.tensor([-10.0, -3.3, 7.9, 10.0])
    out = fd.rotate_images(rgb, angles)
    for i, angle in enumerate(angles.tolist()):
        ref = TF.rotate(rgb[i], angle, interpolation=TF.InterpolationMode.NEAREST, fill=[0.0])
        assert (out[i] != ref).float().mean() < 0.005
        pil = TF.to_tensor(TF.rotate(TF.to_pil_image(rgb[i]), angle))   # the authors' PIL op
        assert (out[i] - pil).abs().mean() < 0.01
    assert not torch.equal(out[2], rgb[2])


def test_integer_translation_matches_random_affine_exactly(rgb):
    dx, dy = torch.tensor([3, -2, 0, -3]), torch.tensor([-1, 3, 2, 0])
    out = fd.shift_images(rgb, dx, dy)
    for i in range(4):
        ref = TF.affine(rgb[i], angle=0.0, translate=[int(dx[i]), int(dy[i])], scale=1.0, shear=[0.0, 0.0],
                        interpolation=TF.InterpolationMode.NEAREST, fill=[0.0])
        assert torch.equal(out[i], ref)
    assert torch.equal(fd.shift_images(rgb, dx, dy, max_shift=5), out)


def test_crop_with_padding_is_exact_for_given_offsets(rgb):
    pad, top, left = 4, torch.tensor([0, 8, 4, 1]), torch.tensor([8, 0, 4, 6])
    out = fd.shift_images(rgb, pad - left, pad - top, max_shift=pad)
    for i in range(4):
        assert torch.equal(out[i], TF.crop(TF.pad(rgb[i], pad), int(top[i]), int(left[i]), 32, 32))


@pytest.mark.parametrize("op, ref, factors", [
    (fd.adjust_brightness, TF.adjust_brightness, [0.8, 1.0, 1.2, 1.5]),
    (fd.adjust_contrast, TF.adjust_contrast, [0.8, 1.0, 1.1, 1.9]),
    (fd.adjust_saturation, TF.adjust_saturation, [0.0, 0.8, 1.2, 2.0]),
    (fd.adjust_hue, TF.adjust_hue, [-0.1, 0.0, 0.05, 0.5]),
])
def test_colour_ops_match_torchvision_functionals(rgb, op, ref, factors):
    out = op(rgb, torch.tensor(factors))
    for i, factor in enumerate(factors):
        torch.testing.assert_close(out[i], ref(rgb[i], factor), atol=2e-6, rtol=0)
    gray = rgb[:, :1]
    torch.testing.assert_close(op(gray, torch.tensor(factors))[1], ref(gray[1], factors[1]), atol=2e-6, rtol=0)


def test_colour_jitter_applies_ops_in_each_images_own_order(rgb):
    factors = torch.tensor([[0.9, 1.2, 0.7, 0.08]] * 4)
    order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]])
    out = fd.color_jitter_images(rgb, factors, order)
    refs = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(4):
        expected = rgb[i]
        for op_index in order[i].tolist():
            expected = refs[op_index](expected, float(factors[i, op_index]))
        torch.testing.assert_close(out[i], expected, atol=5e-6, rtol=0)


def test_resized_crop_matches_torchvision(rgb):
    top, left = torch.tensor([0, 3, 5, 1]), torch.tensor([0, 2, 0, 6])
    height, width = torch.tensor([32, 27, 24, 30]), torch.tensor([32, 29, 30, 21])
    out = fd.resized_crop_images(rgb, top, left, height, width, 32)
    for i in range(4):
        ref = TF.resized_crop(rgb[i], int(top[i]), int(left[i]), int(height[i]), int(width[i]), [32, 32],
                              antialias=True)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_shift_sampler_has_torchvisions_rounded_uniform_distribution():
    g = torch.Generator().manual_seed(0)
    shifts = fd.sample_shifts(40000, 0.1, 28, g, "cpu")
    limit = 2.8
    for k in range(-3, 4):   # P(round(U(-2.8, 2.8)) = k), half-to-even ties have probability 0
        expected = (min(k + 0.5, limit) - max(k - 0.5, -limit)) / (2 * limit)
        assert abs((shifts == k).float().mean().item() - expected) < 0.01
    assert shifts.abs().max() == 3


def test_resized_crop_sampler_matches_torchvision_get_params():
    torch.manual_seed(0)
    ref = np.array([T.RandomResizedCrop.get_params(torch.zeros(1, 224, 224), [0.8, 1.0], [3 / 4, 4 / 3])
                    for _ in range(3000)], dtype=float)   # (top, left, h, w)
    g = torch.Generator().manual_seed(0)
    ours = torch.stack(fd.sample_resized_crop_boxes(20000, 224, 224, (0.8, 1.0), g, "cpu"), 1).double().numpy()
    assert (ours[:, 2] <= 224).all() and (ours[:, 3] <= 224).all() and (ours[:, :2] >= 0).all()
    assert (ours[:, 0] + ours[:, 2] <= 224).all() and (ours[:, 1] + ours[:, 3] <= 224).all()
    area_ref, area = ref[:, 2] * ref[:, 3] / 224 ** 2, ours[:, 2] * ours[:, 3] / 224 ** 2
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(area, q) - np.quantile(area_ref, q)) < 0.01
        assert abs(np.quantile(ours[:, 3] / ours[:, 2], q) - np.quantile(ref[:, 3] / ref[:, 2], q)) < 0.03
        assert abs(np.quantile(ours[:, 0], q) - np.quantile(ref[:, 0], q)) < 2.5


def test_colour_jitter_sampler_ranges_and_uniform_order():
    g = torch.Generator().manual_seed(0)
    factors, order = fd.sample_color_jitter(12000, (0.2, 0.2, 0.0, 0.1), g, "cpu")
    assert order.shape == (12000, 3) and set(order.flatten().tolist()) == {0, 1, 3}
    assert (order.sort(dim=1).values == torch.tensor([0, 1, 3])).all()
    for op_index in (0, 1, 3):
        assert abs((order[:, 0] == op_index).float().mean().item() - 1 / 3) < 0.02
    assert factors[:, 0].min() >= 0.8 and factors[:, 0].max() <= 1.2
    assert factors[:, 3].min() >= -0.1 and factors[:, 3].max() <= 0.1
    assert abs(factors[:, 1].std().item() - 0.4 / math.sqrt(12)) < 0.005


def test_augment_steps_follow_each_pil_pipeline_order():
    assert fd.augment_steps(get_info("cifar10")) == ("hflip", "crop_pad")
    assert fd.augment_steps(get_info("fashionmnist")) == ("hflip", "rotate", "translate")
    assert fd.augment_steps(get_info("tissuemnist")) == ("rotate", "hflip", "color_jitter")
    assert fd.augment_steps(get_info("padufes20")) == ("hflip", "rotate", "color_jitter", "resized_crop")
    assert fd.augment_steps(get_info("svhn")) == ()


def _augment_both_ways(info, pipeline, image, n, seed=0):
    """n augmented copies of one image: torchvision one at a time, ours as one batch."""
    torch.manual_seed(seed)
    reference = torch.stack([pipeline(image) for _ in range(n)])
    g = torch.Generator().manual_seed(seed)
    return reference, fd.augment_batch(image.expand(n, -1, -1, -1).clone(), info, g)


def _pixel_moment_gaps(reference, ours):
    """Mean absolute gap between the per-pixel means, and between the per-pixel stds."""
    return ((ours.mean(0) - reference.mean(0)).abs().mean().item(),
            (ours.std(0) - reference.std(0)).abs().mean().item())


def _brightness_quantile_gap(reference, ours):
    """Largest gap between quantiles of the per-image, per-channel mean (what colour jitter moves)."""
    q = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])
    return (ours.mean((2, 3)).quantile(q, dim=0) - reference.mean((2, 3)).quantile(q, dim=0)).abs().max().item()


@pytest.mark.parametrize("name, pipeline", [
    ("fashionmnist", T.Compose([T.RandomHorizontalFlip(0.5), T.RandomRotation(10),
                                T.RandomAffine(0, translate=(0.1, 0.1))])),
    ("cifar10", T.Compose([T.RandomHorizontalFlip(0.5), T.RandomCrop(32, padding=4)])),
    ("bloodmnist", T.Compose([T.RandomRotation(10), T.RandomHorizontalFlip(0.5),
                              T.ColorJitter(brightness=0.1, contrast=0.1)])),
])
def test_pipeline_output_distribution_matches_torchvision(name, pipeline):
    info = get_info(name)
    image = fd.resize_images(fd.to_float_images(torch.from_numpy(smooth_images(1, info.native_size,
                                                                               info.image_chans))),
                             info.input_size)[0]
    reference, ours = _augment_both_ways(info, pipeline, image, 1500)
    mean_gap, std_gap = _pixel_moment_gaps(reference, ours)
    assert mean_gap < 0.006 and std_gap < 0.004
    assert _brightness_quantile_gap(reference, ours) < 0.007
    no_flip = dataclasses.replace(info, augment=dataclasses.replace(info.augment, hflip=0.0))
    assert _pixel_moment_gaps(*_augment_both_ways(no_flip, pipeline, image, 1500))[0] > 0.02   # test has power


def test_pad_ufes_pipeline_distribution_matches_torchvision_at_small_size():
    info = dataclasses.replace(get_info("padufes20"), native_size=32, input_size=32)
    pipeline = T.Compose([T.RandomHorizontalFlip(0.5), T.RandomRotation(10),
                          T.ColorJitter(0.2, 0.2, 0.2, 0.1), T.RandomResizedCrop(32, scale=(0.8, 1.0))])
    image = fd.to_float_images(torch.from_numpy(smooth_images(1, 32, 3)))[0]
    reference, ours = _augment_both_ways(info, pipeline, image, 1500)
    mean_gap, std_gap = _pixel_moment_gaps(reference, ours)
    assert mean_gap < 0.008 and std_gap < 0.004
    assert _brightness_quantile_gap(reference, ours) < 0.005
    no_hue = dataclasses.replace(info, augment=dataclasses.replace(info.augment, color_jitter=(0.2, 0.2, 0.2, 0)))
    assert _brightness_quantile_gap(*_augment_both_ways(no_hue, pipeline, image, 1500)) > 0.007


def make_split(n=10, size=28, chans=1, seed=0):
    return SimpleNamespace(images=smooth_images(n, size, chans, seed), labels=np.arange(n, dtype=np.int64))


def test_eval_loader_is_ordered_unaugmented_resized_and_normalised():
    info = get_info("tissuemnist")   # 28 px gray -> 64 px, 3 channels
    split = make_split(10)
    loader = fd.DeviceLoader(split, info, batch_size=4, train=False, device="cpu")
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.shape == (10, 3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, torch.arange(10))
    gray = fd.resize_images(fd.to_float_images(torch.from_numpy(split.images)), 64)
    for c in range(3):
        assert torch.equal(x[:, c:c + 1], (gray - info.mean[c]) / info.std[c])


def test_train_epoch_is_a_pure_function_of_seed_and_epoch():
    info = get_info("fashionmnist")
    split = make_split(12)

    def epoch(seed, number):
        loader = fd.DeviceLoader(split, info, batch_size=5, train=True, device="cpu", seed=seed)
        loader.set_epoch(number)
        return [(x.clone(), y.clone()) for x, y in loader]

    first, resumed = epoch(0, 3), epoch(0, 3)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, resumed))
    labels = torch.cat([y for _, y in first])
    assert sorted(labels.tolist()) == list(range(12))           # a permutation: every image once
    assert not torch.equal(labels, torch.cat([y for _, y in epoch(0, 4)]))
    assert not torch.equal(first[0][0], epoch(1, 3)[0][0])


def test_train_loader_augments_only_when_asked_and_drops_last():
    info = get_info("cifar10")
    split = make_split(10, 32, 3)
    plain = fd.DeviceLoader(split, info, 4, train=True, device="cpu", augment=False, drop_last=True)
    assert len(plain) == 2 and [len(y) for _, y in plain] == [4, 4]
    x, y = next(iter(plain))
    expected = fd.normalize_images(fd.to_float_images(torch.from_numpy(split.images[y.numpy()])),
                                   torch.tensor(info.mean), torch.tensor(info.std))
    assert torch.equal(x, expected)
    augmented = fd.DeviceLoader(split, info, 4, train=True, device="cpu", channels_last=True)
    x_aug, y_aug = next(iter(augmented))
    assert torch.equal(y_aug, y) and not torch.equal(x_aug, x)
    assert x_aug.is_contiguous(memory_format=torch.channels_last)


def test_bad_inputs_raise_clear_errors():
    info = get_info("fashionmnist")
    with pytest.raises(ValueError, match="uint8"):
        fd.DeviceLoader(SimpleNamespace(images=np.zeros((4, 28, 28, 1), np.float32),
                                        labels=np.zeros(4, np.int64)), info, 2, True, "cpu")
    with pytest.raises(ValueError, match=r"images\[\.\.\., None\]"):
        fd.DeviceLoader(SimpleNamespace(images=np.zeros((4, 28, 28), np.uint8),
                                        labels=np.zeros(4, np.int64)), info, 2, True, "cpu")
    with pytest.raises(ValueError, match="one label per image"):
        fd.DeviceLoader(SimpleNamespace(images=np.zeros((4, 28, 28, 1), np.uint8),
                                        labels=np.zeros((4, 1), np.int64)), info, 2, True, "cpu")
    with pytest.raises(ValueError, match="batch_size"):
        fd.DeviceLoader(make_split(4), info, 0, True, "cpu")
    with pytest.raises(TypeError, match="labels"):
        fd.DeviceLoader(SimpleNamespace(images=np.zeros((4, 28, 28, 1), np.uint8)), info, 2, True, "cpu")


def test_cpu_fallback_helpers():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.warns(UserWarning, match="CUDA only"):
        prepared = fd.prepare_model(model, "cpu", channels_last=True, compile=True)
    assert prepared is model and prepared[0].weight.is_contiguous(memory_format=torch.channels_last)
    with fd.autocast_context("cpu"):
        assert prepared(torch.ones(1, 3, 5, 5)).dtype == torch.float32
    fd.synchronize("cpu")
    assert fd.resolve_device("cpu") == torch.device("cpu")
    assert fd.epoch_seed(0, 1) != fd.epoch_seed(1, 0) and fd.epoch_seed(3, 7) == fd.epoch_seed(3, 7)


def test_precision_resolves_per_device_and_autocasts_the_cpu_only_when_asked():
    assert fd.resolve_precision("auto", "cpu") == "fp32" and fd.resolve_precision("fp32", "cpu") == "fp32"
    layer = torch.nn.Linear(4, 2)
    with fd.autocast_context("cpu", "fp32"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # a CPU without native bf16 warns that it emulates it
        assert fd.resolve_precision("bf16", "cpu") == "bf16"
        with fd.autocast_context("cpu", "bf16"):
            assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    assert layer.weight.dtype == torch.float32
    for bad, device in (("fp16", "cpu"), ("bf16", "meta")):
        with pytest.raises(ValueError, match="precision"):
            fd.resolve_precision(bad, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fd.uses_channels_last("cpu", "bf16") and not fd.uses_channels_last("cpu", "auto")
    assert not fd.uses_channels_last("meta")


def test_a_cpu_without_native_bf16_is_warned_that_bf16_is_emulated(monkeypatch):
    monkeypatch.setattr(fd, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        assert fd.resolve_precision("bf16", "cpu") == "bf16"


def test_augment_steps_agree_with_the_pil_pipeline_for_every_dataset():
    from gradattn.data import list_datasets, paper_transforms
    step_of = {T.RandomHorizontalFlip: "hflip", T.RandomRotation: "rotate", T.RandomAffine: "translate",
               T.RandomCrop: "crop_pad", T.ColorJitter: "color_jitter", T.RandomResizedCrop: "resized_crop"}
    for name in list_datasets():
        info = get_info(name)
        pil_steps = tuple(step_of[type(t)] for t in paper_transforms(info, train=True).transforms
                          if type(t) in step_of)
        assert fd.augment_steps(info) == pil_steps, name


def test_resolve_device_names_the_fix_for_bad_or_unavailable_devices():
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        fd.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available; use --device cpu"):
            fd.resolve_device("cuda")


def test_model_device_is_the_argument_else_where_the_parameters_are():
    model = torch.nn.Linear(2, 2)
    assert fd.model_device(model) == torch.device("cpu")
    assert fd.model_device(model, "meta") == torch.device("meta")
    with pytest.raises(ValueError, match="no parameters.*pass device= explicitly"):
        fd.model_device(torch.nn.ReLU())
    assert fd.model_device(torch.nn.ReLU(), "cpu") == torch.device("cpu")
