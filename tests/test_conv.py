"""``models.conv``: narrow convolutions as a matrix product and shifted sums, checked against float64 convolution."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlib.models import conv, svoboda


@pytest.mark.parametrize("cout,cin,k,pad,h,w", [(1, 64, 5, 0, 23, 31), (1, 7, 3, 1, 9, 12), (3, 16, 3, 1, 17, 8),
                                                 (2, 5, 5, 2, 6, 6), (1, 3, 11, 0, 20, 25), (4, 8, 1, 0, 5, 7)])
def test_narrow_conv2d_is_the_convolution(cout, cin, k, pad, h, w):
    g = torch.Generator().manual_seed(cout * 100 + cin)
    x = torch.randn(2, cin, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    wt, b = torch.randn(cout, cin, k, k, generator=g), torch.randn(cout, generator=g)
    ref = F.conv2d(x.double(), wt.double(), b.double(), padding=pad)
    got = conv.narrow_conv2d(x, wt, b, pad)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert torch.allclose(got.double(), ref, rtol=0, atol=1e-5 * ref.abs().max().item())
    nb = conv.narrow_conv2d(x.contiguous(), wt, None, pad)   # NCHW input, no bias
    assert torch.allclose(nb.double(), ref - b.double().view(1, -1, 1, 1), rtol=0, atol=1e-5 * ref.abs().max().item())


def test_conv2d_uses_the_library_kernel_when_a_gradient_is_taken():
    layer = nn.Conv2d(8, 1, 3, padding=1)
    x = torch.randn(1, 8, 10, 10, requires_grad=True)
    y = conv.conv2d(x, layer)
    assert y.grad_fn is not None and "Convolution" in type(y.grad_fn).__name__
    with torch.no_grad():
        z = conv.conv2d(x, layer)
    assert torch.allclose(z, y.detach(), atol=1e-5)
    wide = nn.Conv2d(8, 16, 3, padding=1)
    with torch.no_grad():   # wide layers, strides and other paddings: always the library kernel
        assert torch.equal(conv.conv2d(x, wide), wide(x))
        strided = nn.Conv2d(8, 1, 3, stride=2)
        assert torch.equal(conv.conv2d(x, strided), strided(x))
        reflect = nn.Conv2d(8, 1, 3, padding=1, padding_mode="reflect")
        assert torch.equal(conv.conv2d(x, reflect), reflect(x))


@pytest.mark.parametrize("arch", ["L4", "L8"])
def test_svoboda_inference_matches_its_training_forward(arch):
    torch.manual_seed(0)
    net = svoboda.SvobodaNet(arch, last_std=0.1).eval()
    x = torch.rand(2, 1, 40, 48)
    with torch.no_grad():
        fast = net(x)
    slow = net(x)   # grad enabled: every layer through the library
    assert torch.allclose(fast, slow.detach(), atol=1e-5)
