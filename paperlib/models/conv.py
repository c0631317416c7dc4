"""Convolutions whose library kernels run far below the machine's rate, computed another way at inference.

A convolution with one or a few output channels (L4's and L8's last layer, CAS-CNN's A^..D^,
the posterior generator's RGB layer) reaches about 6 GFLOP/s on a CPU through oneDNN, against
about 100 for a 64- or 128-channel one (2-core EPYC, AVX-512, one thread): a 5x5 64 -> 1 layer,
2 % of L4's FLOPs, took a fifth of its forward pass. ``conv2d`` computes such a layer as one
matrix product, every kernel tap of every output channel at every input pixel (``k*k*Cout`` x
``Cin`` times ``Cin`` x pixels), then adds the taps' shifted planes: 2.3-5.4x faster on those
layers, the same sum in another order (float rounding differs; ``tests/test_conv.py`` compares it
with float64; on 12 LIVE1 images L4 and L8 changed 16 of 8.3 M pixels by one grey level).

Used only where no gradient is taken (evaluation, validation); training runs the library kernel.
L4 and L8 use it (``models.svoboda``). CAS-CNN's A^..D^ and the posterior generator's RGB layer do not: the
posterior notebook's sliced Wasserstein distances draw their patches with a seed made from each image's digest,
so a one-level change in any pixel of a restored image draws other patches, and its printed SWD moved within its
own draw-to-draw spread (e.g. 28.52 -> 28.53, std 0.75) when they did.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["NARROW", "conv2d", "narrow_conv2d"]

NARROW = 4   # at most this many output channels: the matrix-product form


def narrow_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  padding: int = 0) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` (stride 1, zero padding) as a product and shifted sums."""
    co, ci, kh, kw = weight.shape
    n, c, h, w = x.shape
    if c != ci:
        raise ValueError(f"input has {c} channels, the weight expects {ci}")
    ho, wo = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    pixels = x.permute(0, 2, 3, 1).reshape(-1, c)               # a view of a channels_last tensor
    taps = torch.mm(weight.permute(2, 3, 0, 1).reshape(kh * kw * co, c).to(pixels.dtype), pixels.t())
    taps = taps.view(kh, kw, co, n, h, w)
    out = (x.new_zeros(co, n, ho, wo) if bias is None else
           bias.to(x.dtype).view(co, 1, 1, 1).expand(co, n, ho, wo).clone())
    for i in range(kh):
        y0, y1 = max(0, padding - i), min(ho, h + padding - i)   # output rows whose tap i falls inside the input
        for j in range(kw):
            x0, x1 = max(0, padding - j), min(wo, w + padding - j)
            out[:, :, y0:y1, x0:x1] += taps[i, j, :, :, y0 + i - padding:y1 + i - padding,
                                            x0 + j - padding:x1 + j - padding]
    # in the input's layout with its strides, as the library returns it: a one-channel map is contiguous in both
    # layouts, and only explicit channels_last strides keep later concatenations and up-samplings channels_last
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return torch.empty((n, co, ho, wo), dtype=out.dtype, device=out.device,
                       memory_format=fmt).copy_(out.permute(1, 0, 2, 3))


def conv2d(x: torch.Tensor, layer: nn.Conv2d) -> torch.Tensor:
    """``layer(x)``, through ``narrow_conv2d`` when no gradient is taken and the layer is a plain narrow one."""
    if (torch.is_grad_enabled() or type(layer) is not nn.Conv2d or layer.out_channels > NARROW or layer.stride != (1, 1)
            or layer.dilation != (1, 1) or layer.groups != 1 or layer.padding_mode != "zeros"
            or not isinstance(layer.padding, tuple) or len(set(layer.padding)) != 1
            or x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_autocast_enabled("cpu")):
        return layer(x)
    return narrow_conv2d(x, layer.weight, layer.bias, layer.padding[0])
