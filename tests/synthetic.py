"""Small synthetic gray images for training tests: blocky, with edges, so JPEG has something to damage."""
import numpy as np


def synthetic_images(n=3, seed=0, height=40, width=56):
    """``n`` uint8 HxW images of a few sizes (height + 8k, width - 4k)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        h, w = height + 8 * k, width - 4 * k
        low = rng.uniform(0, 255, (h // 8 + 1, w // 8 + 1))
        img = np.kron(low, np.ones((8, 8)))[:h, :w]
        img += 40 * np.sin(np.arange(w) / (2 + k))[None] + rng.normal(0, 8, (h, w))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def smooth_images(shapes=((40, 48), (40, 48), (33, 50), (40, 48)), color=False, seed=0):
    """uint8 images of ``shapes``: a smooth pattern plus noise (sd 8), HxW or HxWx3, for restoration tests."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in shapes:
        y, x = np.mgrid[:h, :w]
        base = 128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0)
        img = base[..., None] + rng.normal(0, 8, (h, w, 3)) if color else base + rng.normal(0, 8, (h, w))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out
