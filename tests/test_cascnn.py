"""CAS-CNN architecture (Table I), multi-scale outputs and loss, inference, fp16 export."""
import csv
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlib import checkpoint as ckpt
from paperlib.models.cascnn import (ATTR, CASCNN, SCALES, TABLE_I, TABLE_I_TOTAL_K, load_cascnn,
                                    ms_loss, ms_targets, output_loss)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return CASCNN()


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return CASCNN(width=8)


def test_table_i_layers_and_parameter_counts(net):
    weights = net.table_params()
    for name, (c_out, c_in, k, full, printed_k) in TABLE_I.items():
        conv = getattr(net, ATTR[name]).conv
        assert isinstance(conv, nn.ConvTranspose2d) == full, name
        assert (conv.out_channels, conv.in_channels, conv.kernel_size) == (c_out, c_in, (k, k)), name
        if full:
            assert conv.stride == (2, 2), name
        assert round(weights[name] / 1000) == printed_k, name   # Table I counts weights, rounded to k
    assert sum(round(v / 1000) for v in weights.values()) == TABLE_I_TOTAL_K == 5144
    assert sum(weights.values()) == 5_144_987
    # + 1 bias per output channel + one PReLU slope for each of the 15 layers
    assert sum(p.numel() for p in net.parameters()) == 5_144_987 + 2_052 + 15
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert sum(isinstance(m, nn.PReLU) for m in net.modules()) == 15


def test_table_i_matches_transcribed_csv():
    path = Path(__file__).resolve().parents[1] / "paperlib" / "published" / "cascnn.csv"
    rows = {r["method"]: int(r["value"]) for r in csv.DictReader(path.open()) if r["metric"] == "params_k"}
    ascii_name = {"D~": "Dtilde", "D^": "Dhat", "C~": "Ctilde", "C^": "Chat", "B~": "Btilde", "B^": "Bhat",
                  "A^": "Ahat"}
    for name, row in TABLE_I.items():
        assert rows[f"CAS-CNN (layer {ascii_name.get(name, name)})"] == row[4], name
    assert rows["CAS-CNN"] == TABLE_I_TOTAL_K


def test_init_uniform_in_fan_in_bound(net):
    for name in TABLE_I:
        conv = getattr(net, ATTR[name]).conv
        bound = (conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]) ** -0.5
        for t in (conv.weight, conv.bias):
            assert t.abs().max() <= bound
        assert conv.weight.abs().max() > 0.9 * bound
        assert abs(conv.weight.mean().item()) < 0.1 * bound or conv.weight.numel() < 5000


def test_multiscale_shapes(net):
    x = torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        outs = net(x, multiscale=True)
        full = net(x)
    assert [tuple(o.shape) for o in outs] == [(2, 1, 32 // s, 48 // s) for s in SCALES]
    assert [tuple(o.shape) for o in ms_targets(x)] == [tuple(o.shape) for o in outs]
    assert torch.equal(full, outs[-1])


def test_odd_sizes_pad_and_crop_back(net):
    x = torch.rand(1, 1, 37, 53)
    with torch.no_grad():
        y = net(x)
        outs = net(x, multiscale=True)
        ref = net(F.pad(x, (0, 3, 0, 3), mode="replicate"))
    assert y.shape == x.shape
    assert torch.equal(y, ref[..., :37, :53])
    assert [tuple(o.shape[-2:]) for o in outs] == [(5, 7), (10, 14), (19, 27), (37, 53)]


def test_gradients_reach_every_parameter(small):
    x, t = torch.rand(2, 1, 16, 24), torch.rand(2, 1, 16, 24)
    for loss_fn in (ms_loss, output_loss):
        small.zero_grad(set_to_none=True)
        loss_fn(small(x, multiscale=True), t).backward()
        for name, p in small.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            if ".act." not in name:  # a PReLU slope gets no gradient when its input is all positive
                assert p.grad.abs().sum() > 0, (loss_fn.__name__, name)


def test_ms_loss_definition():
    t = torch.rand(3, 1, 16, 16)
    assert ms_loss(ms_targets(t), t).item() == 0.0
    zeros = [torch.zeros_like(o) for o in ms_targets(t)]
    expected = sum(F.avg_pool2d(t, s).pow(2).mean() if s > 1 else t.pow(2).mean() for s in SCALES) / 4
    assert torch.allclose(ms_loss(zeros, t), expected)
    assert torch.allclose(ms_targets(t)[0][0, 0, 1, 1], t[0, 0, 8:16, 8:16].mean())
    with pytest.raises(ValueError):
        ms_targets(torch.rand(1, 1, 12, 16))


def test_fp16_export_round_trip(net, tmp_path):
    path = ckpt.export_fp16(net.state_dict(), tmp_path / "w.pt", {"arch": "CASCNN", "kwargs": net.kwargs})
    assert 10.2e6 < path.stat().st_size < 10.5e6          # 5.15 M parameters x 2 bytes
    sd, meta = ckpt.load_fp16(path)
    assert meta["kwargs"] == {"width": 128, "output_prelu": True}
    assert all(v.dtype == torch.float32 for v in sd.values())
    back = load_cascnn(path)
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v.half().float()), k
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        assert torch.allclose(back(x), net(x), atol=2e-3)
