"""Augmentations of single-cell blood-smear images: DINO multi-crop and a single view, as ``uint8`` HWC crops.

hema's backbones take ``uint8`` RGB NHWC images and normalise them themselves
(:class:`hema.train.backbones.cell_backbone.CellBackbone`), so every crop stays ``uint8`` ``(H, W, 3)``: no
``ToDtype`` and
no ``Normalize`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch import Tensor
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import prepare_view
from hema.train.data.lab_shift import LabShift

__all__ = [
    "CellAugmentation",
    "MultiCropAugmentation",
    "MultiCropConfig",
    "RandomGaussianBlur",
    "border_colour",
    "collate_multicrop",
]


@dataclass(frozen=True)
class MultiCropConfig:
    """Parameters of :class:`MultiCropAugmentation`; defaults follow DINO, adapted to stained single cells.

    Attributes:
        global_size: Side of the two global crops (the backbone's input size).
        local_size: Side of the local crops.
        local_crops: Number of local crops (0 disables them).
        global_scale: Area range of a global crop, as a fraction of the image.
        local_scale: Area range of a local crop.
        rotation_degrees: Each crop is rotated by an angle drawn uniformly from ``[-d, d]``; 180 means any angle
            (cells have no preferred orientation on the slide).
        rotation_fill: RGB colour for the corners the rotation uncovers; ``None`` takes the median colour of the
            image's one-pixel border, i.e. the smear's background around a centred cell, so the corners blend
            in instead of adding black triangles the network could learn to spot. (``torchvision`` offers no
            reflect padding for rotations; a fixed colour would be wrong for other stains or scanners.)
        flip_p: Probability of a horizontal flip, and independently of a vertical flip.
        brightness: Colour jitter brightness factor range ``[1 - x, 1 + x]`` (stain and illumination variation).
        contrast: Colour jitter contrast.
        saturation: Colour jitter saturation.
        hue: Colour jitter hue shift (kept small: hue separates granules and nuclei).
        color_jitter_p: Probability of applying the colour jitter.
        grayscale_p: Probability of converting a crop to grey (three equal channels).
        blur_sigma: Gaussian blur standard deviation range in pixels.
        global_blur_p: Blur probability of the first and second global crops (DINO: 1.0 and 0.1).
        local_blur_p: Blur probability of each local crop.
        global_solarize_p: Solarisation probability of the first and second global crops (DINO: 0 and 0.2).
        solarize_threshold: Solarisation inverts the pixels at or above this ``uint8`` value.
    """

    global_size: int = 224
    local_size: int = 96
    local_crops: int = 6
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    rotation_degrees: float = 180.0
    rotation_fill: tuple[int, int, int] | None = None
    flip_p: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.05
    color_jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    global_blur_p: tuple[float, float] = (1.0, 0.1)
    local_blur_p: float = 0.5
    global_solarize_p: tuple[float, float] = (0.0, 0.2)
    solarize_threshold: int = 128

    def __post_init__(self) -> None:
        if self.global_size < 1 or self.local_size < 1 or self.local_crops < 0:
            raise ValueError("crop sizes must be positive and local_crops not negative")
        for name in ("global_scale", "local_scale", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {(low, high)}")
        if len(self.global_blur_p) != 2 or len(self.global_solarize_p) != 2:
            raise ValueError("global_blur_p and global_solarize_p need one probability per global crop (2)")
        if not 0 <= self.solarize_threshold <= 255:
            raise ValueError(f"solarize_threshold is a uint8 value, got {self.solarize_threshold}")


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """Median RGB colour of the image's one-pixel border: the smear's background around a centred cell."""
    pixels = np.asarray(image.convert("RGB"))
    border = np.concatenate((pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]))
    red, green, blue = np.median(border, axis=0).round().astype(int).tolist()
    return red, green, blue


class RandomGaussianBlur:
    """With probability ``p``, Pillow's Gaussian blur with a standard deviation drawn from ``sigma``, as DINO.

    Pillow's C blur is several times faster on a CPU than ``torchvision``'s convolution of a PIL image.

    Args:
        p: Probability of blurring.
        sigma: Range of the standard deviation in pixels.
    """

    def __init__(self, p: float, sigma: tuple[float, float]) -> None:
        self.p = p
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.p <= 0 or float(torch.rand(())) >= self.p:
            return image
        radius = float(torch.empty(()).uniform_(*self.sigma))
        return image.filter(ImageFilter.GaussianBlur(radius))


class MultiCropAugmentation:
    """Two global and ``local_crops`` local views of one cell image, as DINO's ``DataAugmentationDINO``.

    Every crop: random rotation of the whole image (any angle, corners filled with the background colour), then
    random resized crop (bicubic), horizontal and vertical flips, colour jitter, random greyscale, Gaussian blur,
    and for the second global crop only, solarisation. Randomness comes from ``torch``'s generator, so
    ``torch.manual_seed`` (or a DataLoader worker seed) makes it reproducible.

    Args:
        config: Augmentation parameters.

    Example:
        >>> crops = MultiCropAugmentation()(Image.open(path))  # doctest: +SKIP
        >>> [tuple(c.shape) for c in crops[:3]]  # doctest: +SKIP
        [(224, 224, 3), (224, 224, 3), (96, 96, 3)]
    """

    def __init__(self, config: MultiCropConfig | None = None) -> None:
        self.config = config or MultiCropConfig()
        c = self.config
        self.global_views = [
            _crop_pipeline(c, c.global_size, c.global_scale, c.grayscale_p, blur_p, solarize_p)
            for blur_p, solarize_p in zip(c.global_blur_p, c.global_solarize_p)
        ]
        self.local_view = _crop_pipeline(c, c.local_size, c.local_scale, c.grayscale_p, c.local_blur_p, 0.0)

    @property
    def n_crops(self) -> int:
        """Crops per image: 2 global plus the local ones."""
        return len(self.global_views) + self.config.local_crops

    def __call__(self, image: Image.Image) -> list[Tensor]:
        """Crops of ``image``: ``[global_1, global_2, local_1, ...]``, each ``uint8`` ``(H, W, 3)``."""
        image = image.convert("RGB")
        fill = self.config.rotation_fill or border_colour(image)
        views = self.global_views + [self.local_view] * self.config.local_crops
        return [_to_hwc_tensor(view(_rotate(image, self.config.rotation_degrees, fill))) for view in views]


class CellAugmentation:
    """One augmented view of a cell image, for supervised and domain-adaptation training.

    The global-crop pipeline of :class:`MultiCropAugmentation` (rotation on the background colour, random resized
    crop, flips, colour jitter, Gaussian blur with the second global crop's probability) without greyscale or
    solarisation: the stain's colours (eosinophil granules, basophil granules) are evidence for the class.

    With ``lab_shift``, a random lab difference (:class:`~hema.train.data.lab_shift.LabShift`) is applied to the
    decoded image first; with ``view``, the model's view of the image (stain standardisation, the cell view:
    :func:`hema.runtime.preprocessing.prepare_view`, the runtime's own function) is taken next, so that the crop
    pipeline works on what the model sees at inference.

    Args:
        image_size: Side of the square output.
        config: Source of every other parameter (its crop sizes, greyscale and solarisation are not used).
        view: The input whose stain and view rules are applied (its size is not used: ``image_size`` is).
        lab_shift: The lab differences to simulate, or ``None``.
    """

    def __init__(
        self,
        image_size: int = 224,
        config: MultiCropConfig | None = None,
        *,
        view: InputSpec | None = None,
        lab_shift: LabShift | None = None,
    ) -> None:
        self.config = replace(config or MultiCropConfig(), global_size=image_size)
        self.view_spec = view
        self.lab_shift = lab_shift
        c = self.config
        self.view = _crop_pipeline(c, image_size, c.global_scale, 0.0, c.global_blur_p[1], 0.0)

    def __call__(self, image: Image.Image) -> Tensor:
        """One ``uint8`` ``(image_size, image_size, 3)`` view of ``image``."""
        image = image.convert("RGB")
        if self.lab_shift is not None:
            image = self.lab_shift(image)
        if self.view_spec is not None:
            image = prepare_view(image, self.view_spec)
        fill = self.config.rotation_fill or border_colour(image)
        return _to_hwc_tensor(self.view(_rotate(image, self.config.rotation_degrees, fill)))


def _crop_pipeline(
    c: MultiCropConfig, size: int, scale: tuple[float, float], grayscale_p: float, blur_p: float, solarize_p: float
) -> Callable[[Image.Image], Image.Image]:
    """Random resized crop, flips, colour jitter, greyscale, blur and solarisation of a PIL image."""
    steps: list[Callable[..., object]] = [
        T.RandomResizedCrop(size, scale=scale, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
        T.RandomHorizontalFlip(c.flip_p),
        T.RandomVerticalFlip(c.flip_p),
        T.RandomApply([T.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue)], p=c.color_jitter_p),
        T.RandomGrayscale(grayscale_p),
        RandomGaussianBlur(blur_p, c.blur_sigma),
    ]
    if solarize_p > 0:
        steps.append(T.RandomSolarize(c.solarize_threshold, p=solarize_p))
    return T.Compose(steps)


def _rotate(image: Image.Image, degrees: float, fill: tuple[int, int, int]) -> Image.Image:
    """Rotate by an angle drawn uniformly from ``[-degrees, degrees]``, uncovered corners painted ``fill``."""
    if degrees <= 0:
        return image
    angle = float(torch.empty(1).uniform_(-degrees, degrees))
    return TF.rotate(image, angle, interpolation=T.InterpolationMode.BILINEAR, fill=list(fill))


def _to_hwc_tensor(image: Image.Image) -> Tensor:
    return TF.pil_to_tensor(image).permute(1, 2, 0).contiguous()


def collate_multicrop(batch: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    """Collate per-image crop lists into one ``(batch, H, W, 3)`` tensor per crop, for a ``DataLoader``.

    Args:
        batch: One list of crops per image, as :class:`MultiCropAugmentation` returns them.

    Returns:
        ``[global_1, global_2, local_1, ...]``, each stacked over the batch.

    Raises:
        ValueError: If the batch is empty or its images have different numbers of crops.
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    counts = {len(crops) for crops in batch}
    if len(counts) != 1:
        raise ValueError(f"images in a batch have different numbers of crops: {sorted(counts)}")
    return [torch.stack([crops[index] for crops in batch]) for index in range(counts.pop())]
