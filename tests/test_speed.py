"""paperlib.speed: FLOP counts are exact properties of the layers; timings only have to be sane (no speed asserts)."""
import math

import pytest
import torch
import torch.nn as nn

from paperlib import speed
from paperlib.models.cascnn import ATTR, CASCNN, TABLE_I

# Pixel-count reduction of the grid each Table I layer reads (A full resolution, B 1/4, C 1/16, D 1/64).
# The full convolutions read the coarser grid (D~ reads D's, C~ the 1/16 concatenation, B~ the 1/4 one).
INPUT_GRID = {"A(1)": 1, "A(2)": 1, "B(1)": 4, "B(2)": 4, "C(1)": 16, "C(2)": 16, "D(1)": 64, "D(2)": 64,
              "D~": 64, "D^": 64, "C~": 16, "C^": 16, "B~": 4, "B^": 4, "A^": 1}


@pytest.mark.parametrize("c_in,c_out,k", [(1, 128, 3), (128, 128, 3), (7, 5, 5), (3, 4, 1)])
def test_conv_layer_costs_2_k2_cin_cout_per_pixel(c_in, c_out, k):
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    assert speed.flops_per_pixel(conv, 16, 24, in_channels=c_in) == 2 * k * k * c_in * c_out


def test_transposed_conv_counts_4_of_16_taps_per_output_pixel():
    # 4x4 stride-2 full convolution: counted on the input grid, i.e. 2*16*Cin*Cout per input pixel
    # = 2*4*Cin*Cout per output pixel (the output has 4x the pixels).
    up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
    per_input_pixel = speed.flops_per_pixel(up, 16, 16, in_channels=8)
    assert per_input_pixel == 2 * 16 * 8 * 4
    assert per_input_pixel / 4 == 2 * 4 * 8 * 4


def test_cascnn_flops_per_pixel_is_the_table_i_sum():
    net = CASCNN()
    expected = sum(2 * k * k * c_in * c_out / INPUT_GRID[name] for name, (c_out, c_in, k, _, _) in TABLE_I.items())
    got = speed.flops_per_pixel(net, 64, 64)
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(1_025_823.625)          # about 1.0 MFLOP per pixel (docs/cpu-training.md)
    by_layer = speed.flops_by_module(net, 64, 64)
    for name, (c_out, c_in, k, _, _) in TABLE_I.items():
        assert by_layer[ATTR[name]] == pytest.approx(2 * k * k * c_in * c_out / INPUT_GRID[name]), name
    assert sum(by_layer.values()) == pytest.approx(got)


def test_flops_per_pixel_does_not_depend_on_image_size():
    net = CASCNN(width=8)
    assert speed.flops_per_pixel(net, 32, 32) == pytest.approx(speed.flops_per_pixel(net, 64, 96), rel=1e-12)


def test_counting_flops_leaves_the_model_as_it_was():
    net = CASCNN(width=8).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    speed.flops_per_pixel(net, 32, 32)
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("bf16", [False, True])
def test_forward_throughput_reports_a_consistent_measurement(bf16):
    net = CASCNN(width=8).train()
    r = speed.forward_throughput(net, 32, 48, batch=2, bf16=bf16, min_time_s=0.05, warmup=1)
    assert net.training                                  # mode restored
    assert r["calls"] >= 1 and r["s_per_call"] > 0
    assert r["mpixel_per_s"] == pytest.approx(2 * 32 * 48 / r["s_per_call"] / 1e6)
    assert r["precision"] == ("bf16 autocast" if bf16 else "fp32")
    assert (r["height"], r["width"], r["batch"], r["layout"]) == (32, 48, 2, "channels_last")
    assert r["threads"] == torch.get_num_threads()


def test_forward_throughput_max_calls_bounds_the_run():
    net = CASCNN(width=8)
    r = speed.forward_throughput(net, 16, 16, min_time_s=60, max_calls=2, warmup=0, channels_last=False)
    assert r["calls"] == 2 and r["layout"] == "NCHW"


def test_conv3x3_flops_per_call_matches_the_counter():
    r = speed.conv3x3_gflops(channels=16, height=24, width=32, batch=2, min_time_s=0.02)
    conv = nn.Conv2d(16, 16, 3, padding=1)
    assert r["flop_per_call"] == speed.flops_per_pixel(conv, 24, 32, in_channels=16) * 24 * 32 * 2
    assert r["gflops"] > 0 and math.isfinite(r["gflops"])
    assert r["gflops"] == pytest.approx(r["flop_per_call"] / r["s_per_call"] / 1e9)


def test_flop_counts_come_from_the_cache_only_for_the_same_architecture(monkeypatch):
    """Counting starts torch's compiler stack, so counts are cached; a layer with other settings (the same weight
    shapes) or another input size is counted again, and a hit is the fresh count."""
    calls = []
    real = speed._count
    monkeypatch.setattr(speed, "_count", lambda *a: calls.append(1) or real(*a))
    a = torch.nn.Conv2d(3, 5, 3, padding=1)
    first = speed.flops_per_pixel(a, 16, 16, in_channels=3)
    assert first == 2 * 9 * 3 * 5 and len(calls) == 1
    b = torch.nn.Conv2d(3, 5, 3, padding=1)
    assert speed.flops_per_pixel(b, 16, 16, in_channels=3) == first and len(calls) == 1     # other weights: a hit
    strided = torch.nn.Conv2d(3, 5, 3, padding=1, stride=2)                                 # same weight shapes
    assert speed.flops_per_pixel(strided, 16, 16, in_channels=3) == first / 4 and len(calls) == 2
    speed.flops_per_pixel(a, 32, 32, in_channels=3)
    assert len(calls) == 3


def test_a_timing_is_measured_once_per_machine_network_and_arguments(monkeypatch):
    """``measured``: a rerun with nothing changed shows the stored measurement (the same numbers, not new noise);
    another network, other arguments, another machine, or the cache switched off measure again."""
    calls = []

    def timing(model, height, width, min_time_s=0.0):
        calls.append(1)
        return speed.forward_throughput(model, height, width, min_time_s=min_time_s, max_calls=1)
    timing.__name__ = "forward_throughput"    # keyed by the timing code it stands for

    net = nn.Conv2d(1, 2, 3, padding=1)
    first = speed.measured(timing, net, 16, 16)
    assert len(calls) == 1 and first["mpixel_per_s"] > 0 and first["measured_at"].endswith("UTC")
    assert speed.measured(timing, net, 16, 16) == first and len(calls) == 1                  # a hit: the same numbers
    speed.measured(timing, net, 32, 32)
    assert len(calls) == 2                                                                   # other arguments
    other = nn.Conv2d(1, 2, 3, padding=1)
    speed.measured(timing, other, 16, 16)
    assert len(calls) == 3                                                                   # other weights
    monkeypatch.setattr(speed.machine, "describe", lambda device="cpu": "cpu (another CPU, AVX512)")
    speed.measured(timing, net, 16, 16)
    assert len(calls) == 4                                                                   # another machine
    monkeypatch.setenv("PAPERLIB_NO_CACHE", "1")
    speed.measured(timing, net, 16, 16)
    speed.measured(timing, net, 16, 16)
    assert len(calls) == 6                                                                   # no cache: every time
