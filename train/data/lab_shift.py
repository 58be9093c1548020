"""Random lab-to-lab differences applied to a decoded cell image, so that a model learns to ignore them.

Two labs' images of the same cell differ in the stain (its strength and hue: haematoxylin- and eosin-like
components vary independently), the lamp and white balance, the optics (focus), the camera's magnification
(how many pixels a cell spans) and the JPEG quality of the export. :class:`LabShift` draws one such difference per
image and applies it to the *raw* image, before the model's view is taken (stain standardisation and the cell
view, :func:`hema.runtime.preprocessing.prepare_view`): training then sees what that view leaves of a lab's
differences, exactly as inference at a new lab will.

Stain jitter follows Tellez et al. 2018 (HED colour augmentation): the image is taken into haematoxylin-eosin-DAB
optical density space (Ruifrok and Johnston's colour deconvolution, scikit-image's matrices), each component
scaled and shifted at random, and taken back. Randomness comes from ``torch``'s generator, as in every hema
augmentation, so a sample's seed fixes it (:class:`hema.train.data.datasets.AugmentedCells`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter
from skimage.color import hed_from_rgb, rgb_from_hed

__all__ = ["LabShift"]


def _uniform(low: float, high: float, size: int | None = None) -> np.ndarray | float:
    draw = torch.empty(size or 1).uniform_(low, high).numpy().astype(np.float64)
    return draw if size else float(draw[0])


def _happens(p: float) -> bool:
    return p > 0 and float(torch.rand(())) < p


@dataclass(frozen=True)
class LabShift:
    """One random lab difference per image: stain, illumination, focus, magnification, JPEG.

    Attributes:
        stain_scale: Each HED component's optical density is multiplied by a factor in ``[1 - x, 1 + x]``.
        stain_shift: ... and shifted by up to ``x`` (optical density units).
        white_balance: Each RGB channel is multiplied by a factor in ``[1 - x, 1 + x]`` (lamp, camera).
        gamma: Range of the gamma applied to all channels (camera response, exposure).
        blur_p: Probability of a defocus blur.
        blur_radius: Range of its Gaussian radius in pixels.
        scale: Range of the factor the whole image is resized by (magnification: cell size in pixels).
        jpeg_p: Probability of a JPEG re-encoding.
        jpeg_quality: Range of its quality.
    """

    stain_scale: float = 0.2
    stain_shift: float = 0.05
    white_balance: float = 0.08
    gamma: tuple[float, float] = (0.75, 1.35)
    blur_p: float = 0.3
    blur_radius: tuple[float, float] = (0.3, 1.6)
    scale: tuple[float, float] = (0.7, 1.4)
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)

    def __call__(self, image: Image.Image) -> Image.Image:
        """The RGB ``image`` as another lab might have exported it."""
        image = self._scaled(image.convert("RGB"))
        pixels = np.asarray(image, dtype=np.float64) / 255.0
        pixels = self._stained(pixels)
        pixels = pixels * _uniform(1 - self.white_balance, 1 + self.white_balance, 3)
        pixels = np.clip(pixels, 0.0, 1.0) ** _uniform(*self.gamma)
        image = Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
        if _happens(self.blur_p):
            image = image.filter(ImageFilter.GaussianBlur(_uniform(*self.blur_radius)))
        if _happens(self.jpeg_p):
            image = _jpeg(image, round(_uniform(*self.jpeg_quality)))
        return image

    def _scaled(self, image: Image.Image) -> Image.Image:
        factor = _uniform(*self.scale)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)

    def _stained(self, pixels: np.ndarray) -> np.ndarray:
        """Each stain component's optical density scaled and shifted (an exact round trip when neither is drawn).

        scikit-image's ``rgb2hed``/``hed2rgb`` clip negative components and so darken a white background even
        without jitter; its deconvolution matrices are used directly instead, in natural-log optical density.
        """
        density = -np.log(np.maximum(pixels, 1.0 / 255.0))
        stains = density @ hed_from_rgb
        stains = stains * _uniform(1 - self.stain_scale, 1 + self.stain_scale, 3) + _uniform(
            -self.stain_shift, self.stain_shift, 3
        )
        return np.exp(-(stains @ rgb_from_hed))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(np.clip(quality, 1, 95)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")
