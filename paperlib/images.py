"""Reading images and turning them into the arrays the protocols score.

Every conversion is explicit: palette images are expanded to RGB, an opaque
alpha channel is dropped, and anything that would need a judgement call
(transparency, 16-bit samples, CMYK, bilevel) is refused with a message.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["read_image", "read_rgb", "read_gray", "rgb_to_y", "pillow_luma"]


def read_image(path) -> np.ndarray:
    """Read an 8-bit image as uint8: HxW for single-channel files, HxWx3 for colour."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode == "L":
            return np.asarray(im, dtype=np.uint8).copy()
        if mode == "RGB":
            return np.asarray(im, dtype=np.uint8).copy()
        if mode == "P":
            has_alpha = "transparency" in im.info
            im = im.convert("RGBA" if has_alpha else "RGB")
            mode = im.mode
            if mode == "RGB":
                return np.asarray(im, dtype=np.uint8).copy()
        if mode in ("RGBA", "LA"):
            arr = np.asarray(im, dtype=np.uint8)
            if (arr[..., -1] != 255).any():
                raise ValueError(
                    f"{path.name}: has transparent pixels ({mode}); flatten it onto a background first")
            return arr[..., :-1].copy() if mode == "RGBA" else arr[..., 0].copy()
        if mode.startswith("I;16") or mode in ("I", "F"):
            raise ValueError(
                f"{path.name}: {mode} images (16-bit or float samples) are not supported; "
                "the papers evaluate 8-bit images — convert it to 8 bits per sample first")
        raise ValueError(f"{path.name}: unsupported image mode {mode!r} (need L, RGB, P or opaque RGBA/LA)")


def read_rgb(path) -> np.ndarray:
    """HxWx3 uint8; a single-channel file is replicated to three equal channels."""
    img = read_image(path)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def read_gray(path) -> np.ndarray:
    """HxW uint8 luma for the gray protocol.

    A single-channel file, or an RGB file whose three channels are identical
    (a gray image stored as RGB, e.g. Set14 ``man``), is already gray and is
    returned as is. Colour files go through MATLAB's ``rgb2ycbcr`` luma.
    """
    img = read_image(path)
    if img.ndim == 2:
        return img
    if (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all():
        return img[..., 0].copy()
    return rgb_to_y(img)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.size == 0:
        raise ValueError("empty image")
    return rgb.astype(np.float64)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of a uint8 RGB image, rounded half away from zero."""
    x = _check_rgb(rgb)
    y = 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0
    return np.floor(y + 0.5).astype(np.uint8)  # y > 0, so floor(y+.5) rounds half away from zero


def pillow_luma(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``convert('L')`` (ITU-R 601 full range): the luma most toolkits use instead."""
    _check_rgb(rgb)
    return np.asarray(Image.fromarray(np.asarray(rgb, dtype=np.uint8)).convert("L"))
