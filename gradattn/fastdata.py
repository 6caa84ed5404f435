"""GPU-resident data path: the split lives on the device as uint8, batches are augmented there.

The authors fed every model through PIL transforms in a two-worker DataLoader in fp32, which leaves a
modern GPU waiting for data most of the time (SPEC 7.9). `DeviceLoader` keeps the whole split on the
device as uint8 (N, H, W, C), gathers a shuffled batch with one index, and applies the paper's
augmentations (SPEC 2, `Augment` in `gradattn.data.registry`) to the whole batch at once, in the same
order the PIL pipeline applies them and with the same parameter distributions as torchvision:

    resize (bilinear)      transforms.Resize(S) on PIL            F.interpolate, antialias=True
    horizontal flip        RandomHorizontalFlip(p)                exact
    rotation               RandomRotation(deg), NEAREST, fill 0   one affine_grid + grid_sample
    translation            RandomAffine(0, translate=(t, t))      integer shifts (torchvision rounds)
    crop with padding      RandomCrop(S, padding=p)               integer shifts, zero fill
    colour jitter          ColorJitter(b, c, s, h)                random order per image
    random resized crop    RandomResizedCrop(S, scale)            per-image box, bilinear

Augmentation happens on float images in [0, 1] (the PIL pipeline augments in pixel space before
ToTensor/Normalize, so fill 0 is black there too); normalisation comes last. Unlike PIL, the image is
not re-quantised to uint8 between steps, a difference below 0.5/255 per step. The step order is the
registry's (`Augment.order`): MedMNIST rotates before flipping, every other dataset flips first.

Every random draw comes from one `torch.Generator` on the device, seeded from (seed, epoch) by
`set_epoch`, so an epoch's batches are a pure function of (seed, epoch) and a resumed run replays them.
The helpers at the bottom (`resolve_precision`, `autocast_context`, `uses_channels_last`, `prepare_model`,
`synchronize`) give the training loop its precision (bf16 autocast on CUDA; on the CPU fp32 unless bf16 is
asked for), the channels_last layout and optional torch.compile on CUDA.
"""
from __future__ import annotations

import contextlib
import functools
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)   # torchvision's rgb_to_grayscale


# ---------------------------------------------------------------------------------------------------
# Deterministic batched image ops on float (B, C, H, W) in [0, 1]. Each matches the torchvision
# functional of the same name for the given per-image parameters (tests/test_fastdata.py checks it).

def to_float_images(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float32 (B, C, H, W) in [0, 1], exactly like ToTensor."""
    return images_uint8.permute(0, 3, 1, 2).float().div(255)


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to (size, size) with antialias, as `TF.resize(x, size, antialias=True)`.

    Antialias matches PIL's Resize when shrinking; when enlarging (MedMNIST 28 -> 64) it is identical to
    plain bilinear with align_corners=False, which is what PIL does too.
    """
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def hflip_images(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Flip the images where the boolean (B,) mask `flip` is true."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def rotate_images(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image counter-clockwise about its centre by `degrees` (B,), nearest, fill 0.

    Same sampling grid as `TF.rotate(img, angle)` on tensors: torchvision builds the inverse map in
    pixel units around the centre and samples with grid_sample(align_corners=False); in normalised
    coordinates that map is the rotation matrix below (the aspect terms vanish for square images).
    """
    height, width = x.shape[-2:]
    theta = torch.deg2rad(degrees.to(torch.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    matrix = torch.stack([
        torch.stack([cos, -sin * (height / width), zero], dim=-1),
        torch.stack([sin * (width / height), cos, zero], dim=-1),
    ], dim=1)
    grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def shift_images(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, max_shift: int | None = None) -> torch.Tensor:
    """Move image b right by dx[b] and down by dy[b] whole pixels, filling with 0: out[y, x] = in[y-dy, x-dx].

    This is `TF.affine(img, angle=0, translate=[dx, dy], scale=1, shear=0)` and, with
    dx = padding - left and dy = padding - top, `TF.crop(TF.pad(img, padding), top, left, H, W)`.
    Pass `max_shift` (a bound on |dx|, |dy|) to avoid reading the shifts back to the host.
    """
    batch, chans, height, width = x.shape
    if max_shift is None:
        max_shift = int(max(dx.abs().max().item(), dy.abs().max().item())) if batch else 0
    pad = max_shift
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (pad - dy).view(-1, 1) + torch.arange(height, device=x.device)   # (B, H)
    cols = (pad - dx).view(-1, 1) + torch.arange(width, device=x.device)    # (B, W)
    b = torch.arange(batch, device=x.device).view(-1, 1, 1, 1)
    c = torch.arange(chans, device=x.device).view(1, -1, 1, 1)
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def resized_crop_images(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                        height: torch.Tensor, width: torch.Tensor, size: int) -> torch.Tensor:
    """Crop box b (top, left, height, width) of image b and resize it to (size, size), bilinear.

    Matches `TF.resized_crop(img, top, left, height, width, [size, size])`: source coordinates follow
    F.interpolate's align_corners=False rule and are clamped to the box, so no pixel outside the box
    leaks in. RandomResizedCrop only enlarges here (box <= image), where antialias changes nothing.
    """
    in_h, in_w = x.shape[-2:]
    steps = torch.arange(size, device=x.device, dtype=torch.float32) + 0.5
    src_y = (steps * (height.float() / size).view(-1, 1) - 0.5).clamp(min=0)
    src_y = torch.minimum(src_y, (height.float() - 1).view(-1, 1)) + top.float().view(-1, 1)
    src_x = (steps * (width.float() / size).view(-1, 1) - 0.5).clamp(min=0)
    src_x = torch.minimum(src_x, (width.float() - 1).view(-1, 1)) + left.float().view(-1, 1)
    norm_y = (2 * src_y + 1) / in_h - 1                                       # (B, size)
    norm_x = (2 * src_x + 1) / in_w - 1
    grid = torch.stack(torch.broadcast_tensors(norm_x[:, None, :], norm_y[:, :, None]), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _per_image(factor: torch.Tensor) -> torch.Tensor:
    return factor.to(torch.float32).view(-1, 1, 1, 1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    factor = _per_image(factor)
    return (factor * x + (1.0 - factor) * other).clamp(0, 1)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return _blend(x, _grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by `shift` (B,) turns, through torchvision's own RGB <-> HSV formulas."""
    if x.shape[1] == 1:
        return x
    h, s, v = _rgb_to_hsv(x).unbind(dim=1)
    h = (h + shift.to(torch.float32).view(-1, 1, 1)) % 1.0
    return _hsv_to_rgb(torch.stack((h, s, v), dim=1))


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=1)
    maxc = x.max(dim=1).values
    minc = x.min(dim=1).values
    flat = maxc == minc
    ones = torch.ones_like(maxc)
    chroma = maxc - minc
    s = chroma / torch.where(flat, ones, maxc)
    chroma = torch.where(flat, ones, chroma)
    rc, gc, bc = (maxc - r) / chroma, (maxc - g) / chroma, (maxc - b) / chroma
    h = ((maxc == r) * (bc - gc) + ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
         + ((maxc != g) & (maxc != r)) * (4.0 + gc - rc))
    h = torch.fmod(h / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """The closed form of torchvision's sector table: channel = v - v*s*clamp(min(k, 4 - k), 0, 1)."""
    h, s, v = x.unbind(dim=1)
    channels = []
    for offset in (5.0, 3.0, 1.0):
        k = (offset + h * 6.0) % 6.0
        channels.append(v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(channels, dim=1)


COLOR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter_images(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor,
                        used: tuple = (0, 1, 2, 3)) -> torch.Tensor:
    """Apply ColorJitter's four ops with per-image `factors` (B, 4) in per-image `order` (B, k).

    Column j of `factors` feeds COLOR_OPS[j] (brightness, contrast, saturation, hue); `order[b]` lists
    which ops image b gets, first to last, exactly as ColorJitter's randperm does. `used` names the
    ops that can occur in `order`, so the others are never computed.
    """
    for slot in range(order.shape[1]):
        for op_index in used:
            op = COLOR_OPS[op_index]
            chosen = order[:, slot] == op_index
            x = torch.where(chosen.view(-1, 1, 1, 1), op(x, factors[:, op_index]), x)
    return x


def normalize_images(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per channel, the same arithmetic as transforms.Normalize."""
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


# ---------------------------------------------------------------------------------------------------
# Random parameters, drawn on the device with the distributions torchvision's get_params uses.

def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (high - low) + low


def _randint(n: int, high: torch.Tensor | int, generator: torch.Generator, device) -> torch.Tensor:
    """Uniform integers in [0, high) with a per-image `high`."""
    return (torch.rand(n, generator=generator, device=device) * high).floor().long()


def sample_shifts(n: int, fraction: float, size: int, generator, device) -> torch.Tensor:
    """RandomAffine's translation: round(uniform(-fraction * size, fraction * size)), half to even."""
    limit = fraction * size
    return torch.round(_uniform(n, -limit, limit, generator, device)).long()


def sample_color_jitter(n: int, jitter: tuple, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """ColorJitter(brightness, contrast, saturation, hue) factors (n, 4) and a random op order (n, k)."""
    brightness, contrast, saturation, hue = jitter
    ranges = [(max(0.0, 1 - brightness), 1 + brightness), (max(0.0, 1 - contrast), 1 + contrast),
              (max(0.0, 1 - saturation), 1 + saturation), (-hue, hue)]
    active = torch.tensor([j for j, v in enumerate(jitter) if v], device=device, dtype=torch.long)
    factors = torch.stack([_uniform(n, lo, hi, generator, device) for lo, hi in ranges], dim=1)
    shuffle = torch.rand(n, len(active), generator=generator, device=device).argsort(dim=1)
    return factors, active[shuffle]


def sample_resized_crop_boxes(n: int, height: int, width: int, scale: tuple, generator, device,
                              ratio: tuple = (3 / 4, 4 / 3), attempts: int = 10):
    """RandomResizedCrop.get_params for n images at once: (top, left, box_height, box_width).

    Each image tries `attempts` (area, aspect) draws and keeps the first box that fits; images where
    none fits fall back to the central crop of the allowed aspect ratio, as torchvision does.
    """
    area = height * width
    target = area * _uniform(n * attempts, scale[0], scale[1], generator, device).view(n, attempts)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(_uniform(n * attempts, log_lo, log_hi, generator, device)).view(n, attempts)
    box_w = torch.round(torch.sqrt(target * aspect)).long()
    box_h = torch.round(torch.sqrt(target / aspect)).long()
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    first = torch.where(fits.any(dim=1), fits.float().argmax(dim=1), 0).view(-1, 1)
    box_w, box_h = box_w.gather(1, first).squeeze(1), box_h.gather(1, first).squeeze(1)

    in_ratio = width / height
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = int(round(height * max(ratio))), height
    else:
        fallback_w, fallback_h = width, height
    found = fits.any(dim=1)
    box_w = torch.where(found, box_w, fallback_w)
    box_h = torch.where(found, box_h, fallback_h)
    top = torch.where(found, _randint(n, height - box_h + 1, generator, device), (height - fallback_h) // 2)
    left = torch.where(found, _randint(n, width - box_w + 1, generator, device), (width - fallback_w) // 2)
    return top, left, box_h, box_w


# ---------------------------------------------------------------------------------------------------
# The paper's train-time pipeline for one dataset.

def augment_steps(info) -> tuple[str, ...]:
    """The augmentation steps a dataset uses, in the order its PIL pipeline applies them (SPEC 2).

    The order comes from the registry (`Augment.order`, then `Augment.STEPS`), the same rule
    `gradattn.data.transforms` uses, so both paths agree by construction.
    """
    aug = info.augment
    used = {"hflip": aug.hflip > 0, "rotate": aug.rotate > 0, "translate": aug.translate > 0,
            "crop_pad": aug.crop_pad > 0, "color_jitter": bool(aug.color_jitter and any(aug.color_jitter)),
            "resized_crop": aug.resized_crop_scale is not None}
    order = list(aug.order) + [step for step in aug.STEPS if step not in aug.order]
    return tuple(step for step in order if used[step])


def augment_batch(x: torch.Tensor, info, generator: torch.Generator) -> torch.Tensor:
    """Apply the dataset's random train-time augmentation to a float batch in [0, 1] at input size."""
    aug = info.augment
    n, device = x.shape[0], x.device
    height, width = x.shape[-2:]
    for step in augment_steps(info):
        if step == "hflip":
            x = hflip_images(x, torch.rand(n, generator=generator, device=device) < aug.hflip)
        elif step == "rotate":
            x = rotate_images(x, _uniform(n, -aug.rotate, aug.rotate, generator, device))
        elif step == "translate":
            dx = sample_shifts(n, aug.translate, width, generator, device)
            dy = sample_shifts(n, aug.translate, height, generator, device)
            x = shift_images(x, dx, dy, max_shift=math.ceil(aug.translate * max(height, width)))
        elif step == "crop_pad":
            span = 2 * aug.crop_pad + 1
            top = _randint(n, span, generator, device)
            left = _randint(n, span, generator, device)
            x = shift_images(x, aug.crop_pad - left, aug.crop_pad - top, max_shift=aug.crop_pad)
        elif step == "color_jitter":
            factors, order = sample_color_jitter(n, tuple(aug.color_jitter), generator, device)
            used = tuple(j for j, amount in enumerate(aug.color_jitter) if amount)
            x = color_jitter_images(x, factors, order, used)
        elif step == "resized_crop":
            top, left, box_h, box_w = sample_resized_crop_boxes(
                n, height, width, tuple(aug.resized_crop_scale), generator, device)
            x = resized_crop_images(x, top, left, box_h, box_w, info.input_size)
    return x


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed that depends on (seed, epoch) only, well mixed for nearby pairs."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _as_tensor(array) -> torch.Tensor:
    """A tensor view of an array; read-only numpy arrays (memory maps, cached npz) are copied first,
    since torch cannot safely share memory it may not write."""
    if isinstance(array, np.ndarray) and not array.flags.writeable:
        array = array.copy()
    return torch.as_tensor(array)


class DeviceLoader:
    """Batches of (x float32 (B, in_chans, S, S) normalised, y int64) from a split held on `device`.

    `split` needs `.images` uint8 (N, H, W, C) and `.labels` int (N,), numpy or torch (an ArraySplit).
    Shuffles only when `train`; augments only when `train and augment`. Call `set_epoch(epoch)` before
    each epoch, as with DistributedSampler: without it every pass replays the same epoch.
    """

    def __init__(self, split, info, batch_size: int, train: bool, device, seed: int = 0,
                 augment: bool = True, drop_last: bool = False, channels_last: bool = False):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        batch_size = int(batch_size)
        for field in ("images", "labels"):
            if not hasattr(split, field):
                raise TypeError(f"split needs .images and .labels (e.g. gradattn.data.ArraySplit); "
                                f"{type(split).__name__} has no .{field}")
        self.device = torch.device(device)
        images, labels = _as_tensor(split.images), _as_tensor(split.labels)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != info.image_chans:
            raise ValueError(
                f"{info.name}: split.images must be uint8 (N, H, W, {info.image_chans}), got "
                f"{str(images.dtype).replace('torch.', '')} {tuple(images.shape)}; add a channel axis "
                f"with images[..., None] or convert with images.astype(np.uint8) before loading")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{info.name}: split.labels must be 1-D with one label per image, got "
                             f"shape {tuple(labels.shape)} for {len(images)} images; flatten with .reshape(-1)")
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.info = info
        self.batch_size = batch_size
        self.train = train
        self.augment = augment and train and not info.augment.is_identity
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.seed = seed
        self.epoch = 0
        self.mean = torch.tensor(info.mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(info.std, dtype=torch.float32, device=self.device)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def prepare(self, images_uint8: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, H, W, C) on the device -> the network's normalised float input.

        Augments when the loader does, drawing from `generator` (the epoch's; None: the global RNG).
        """
        x = resize_images(to_float_images(images_uint8), self.info.input_size)
        if self.augment:
            x = augment_batch(x, self.info, generator)
        if x.shape[1] != self.info.in_chans:
            x = x.expand(-1, self.info.in_chans, -1, -1)
        x = normalize_images(x, self.mean, self.std)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=memory_format)

    def __iter__(self):
        generator = torch.Generator(device=self.device)
        generator.manual_seed(epoch_seed(self.seed, self.epoch))
        n = len(self.labels)
        order = torch.randperm(n, generator=generator, device=self.device) if self.train else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            if order is None:
                images, labels = self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                images, labels = self.images[index], self.labels[index]
            yield self.prepare(images, generator), labels


# ---------------------------------------------------------------------------------------------------
# Speed helpers for the training loop: fast on CUDA, a plain fp32 eager fallback elsewhere.

def model_device(model: torch.nn.Module, device=None) -> torch.device:
    """`device` as a torch.device, or where the model's parameters are when it is None: the default of every
    function that runs a model on batches it moves itself."""
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("the model has no parameters, so it has no device to run on; pass device= explicitly")
    return param.device


def resolve_device(device="auto") -> torch.device:
    """'auto' (or None) -> cuda when available, else cpu; anything else must name a usable torch device."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:<index>") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available; use --device cpu or auto")
    return resolved


PRECISIONS = ("auto", "bf16", "fp32")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 kernels natively on this CPU (AVX512-BF16 or AMX); elsewhere torch emulates
    them, slower than fp32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device) -> str:
    """"bf16" or "fp32": the arithmetic a run's forward passes use on `device`.

    "auto" is bf16 autocast on CUDA GPUs that support it and fp32 elsewhere, the policy of every run before
    the setting existed. "bf16" asks for autocast on the CPU too, the arithmetic the GPU runs use: on a
    2-core CPU with native bf16 a training step ran 1.07-1.33x as fast as in fp32 (benchmarks/cpu_step.py,
    benchmarks/README.md). "fp32" never autocasts (a GPU run's check against the CPU's arithmetic)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not supported:
            raise ValueError("precision bf16 asked for, but this GPU has no bf16; use --precision auto or fp32")
        return "bf16" if precision != "fp32" and supported else "fp32"
    if precision == "bf16" and device.type != "cpu":
        raise ValueError(f"precision bf16 is for cuda and cpu devices, not {device.type}; use auto or fp32")
    if precision == "bf16" and not cpu_has_native_bf16():
        warnings.warn("this CPU has no native bf16 (AVX512-BF16/AMX): torch emulates it, slower than fp32; "
                      "--precision auto trains in fp32", stacklevel=2)
    return "bf16" if precision == "bf16" else "fp32"


def autocast_context(device, precision: str = "auto", cache_enabled: bool = True):
    """The forward pass's autocast for `precision` (see `resolve_precision`): bf16 autocast (BatchNorm and
    the loss stay fp32, weights stay fp32) or nothing.

    GPUs without bf16 run fp32 rather than fp16, so no GradScaler is ever needed. `cache_enabled=False`
    turns off autocast's weight-cast cache, which a CUDA graph capture requires (gradattn.trainstep).
    """
    device = torch.device(device)
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache_enabled)
    return contextlib.nullcontext()


def uses_channels_last(device, precision: str = "auto") -> bool:
    """Whether models and batches on `device` take the channels_last layout: on CUDA (cuDNN's fast kernels),
    and on the CPU under bf16 only (oneDNN's bf16 kernels gained from it, its fp32 ones did not:
    benchmarks/cpu_step.py). A layout, not a precision: results differ by float rounding only."""
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and resolve_precision(precision, device) == "bf16")


def prepare_model(model: torch.nn.Module, device, channels_last: bool = False,
                  compile: bool = False) -> torch.nn.Module:
    """Move the model to `device`, optionally channels_last and torch.compile'd (CUDA only).

    Compilation uses `model.compile()`, in place, so state_dict keys, attributes and hooks stay those
    of the plain model. The first steps after it are slow (compiling): keep them out of timings.
    """
    device = torch.device(device)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        if device.type == "cuda":
            model.compile()
        else:
            warnings.warn(f"torch.compile is used on CUDA only; running eager on {device}", stacklevel=2)
    return model


def synchronize(device) -> None:
    """Wait for queued work on `device` (for honest wall-clock timings); a no-op on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
