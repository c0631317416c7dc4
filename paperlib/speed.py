"""How fast a network runs here: forward throughput, FLOPs per pixel, and this machine's 3x3-conv rate.

CAS-CNN reports "a throughput of 1.01 Mpixel/s" for the forward pass on a GTX 1080
(fp32). ``forward_throughput`` measures the same quantity for any image-to-image
network on this machine; ``flops_per_pixel`` counts the work per output pixel with
``torch.utils.flop_counter.FlopCounterMode``; ``conv3x3_gflops`` measures what
this machine reaches on the operation that dominates that work (a 3x3
convolution), so the share of it a network achieves can be stated.

What the FLOP counter counts (and what it leaves out):

* convolutions and matrix products only, a multiply-add as 2 FLOPs:
  a k x k convolution with Cin inputs and Cout outputs costs ``2 k^2 Cin Cout``
  per output pixel (bias not counted);
* a transposed convolution is counted on its *input* grid,
  ``2 k^2 Cin Cout`` per input pixel: for CAS-CNN's 4x4 stride-2 layers that is
  ``2 * 4 * Cin * Cout`` per output pixel (each output pixel gets 4 of the 16 taps);
* activations (PReLU), pooling, up-sampling, padding and concatenation are not
  counted (they are memory-bound and a small share of the time).

CAS-CNN (Table I, 128/256 channels) comes to 1,025,824 FLOPs per pixel
(1.03 MFLOP; docs/cpu-training.md), independent of the image size
for sides that are multiples of 8. Timings are wall-clock means over as many
calls as fit in ``min_time_s`` after ``warmup`` calls; they depend on what else
the machine is doing, so the result carries the thread count and load average, and the
device with the CPU model and the instruction set torch dispatches to (``machine.describe``).
bf16 autocast is measured when asked for; callers ask only where ``machine.bf16_native``
(emulated bf16 on an AVX2-only CPU is tens of times slower than fp32).
"""
from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from . import machine

__all__ = ["flops_per_pixel", "flops_by_module", "forward_throughput", "conv3x3_gflops", "machine_state", "measured", "TIMED"]

TIMED = ("Timings come from the results cache when nothing they depend on changed: a rerun shows the run that measured "
         "them (measured_at); PAPERLIB_NO_CACHE=1 measures again.")   # for the captions of tables ``measured`` fills


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def machine_state() -> dict:
    """Threads torch uses and the 1-minute load average (None where the OS has none)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_avg_1min": load}


def _count(model: nn.Module, height: int, width: int, in_channels: int, batch: int) -> FlopCounterMode:
    device = _device_of(model)
    x = torch.zeros(batch, in_channels, height, width, device=device)
    was_training = model.training
    model.eval()
    try:   # with a gradient every layer runs as the convolution it is (models.conv: narrow layers at inference)
        with torch.enable_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter


def _counts(model: nn.Module, height: int, width: int, in_channels: int) -> dict:
    """``FlopCounterMode``'s counts of one forward pass, ``{module: {op: FLOPs}}`` (``"Global"``: all of them), from
    the results cache when the architecture (the code its forward runs, its class's kwargs, its layers as printed,
    its tensors' names and shapes, torch's version) and the input are unchanged: the weights' values do not change
    a count, and counting starts torch's compiler stack, seconds per process."""
    from . import cache
    k = cache.key(what="flop counts", model_code=cache.forward_digest(model), kwargs=getattr(model, "kwargs", None),
                  layers=repr(model),   # torch's own layers with their settings (stride, padding, ...)
                  tensors=[(n, str(t.dtype), list(t.shape)) for n, t in model.state_dict().items()],
                  input=[1, in_channels, height, width], code=cache.code_digest("paperlib.speed:_count"))
    hit = cache.load(k)
    if hit is not None:
        return hit[0]
    counts = {str(m): {str(op): int(v) for op, v in ops.items()}
              for m, ops in _count(model, height, width, in_channels, 1).get_flop_counts().items()}
    cache.store(k, counts)
    return counts


def flops_per_pixel(model: nn.Module, height: int = 64, width: int = 64, in_channels: int = 1) -> float:
    """FLOPs (multiply-add = 2) of one forward pass divided by the output pixels ``height * width``.

    Counts convolutions and matrix products only (see the module docstring).
    """
    return sum(_counts(model, height, width, in_channels).get("Global", {}).values()) / (height * width)


def flops_by_module(model: nn.Module, height: int = 64, width: int = 64, in_channels: int = 1) -> dict:
    """FLOPs per output pixel of each direct child module of ``model`` (those that count any)."""
    counts = _counts(model, height, width, in_channels)
    root = type(model).__name__
    out = {}
    for name, ops in counts.items():
        parts = name.split(".")
        if len(parts) == 2 and parts[0] == root:
            out[parts[1]] = sum(ops.values()) / (height * width)
    return out


def _time_calls(fn, device: torch.device, min_time_s: float, warmup: int, max_calls: int | None) -> tuple[int, float]:
    machine.keep_freed_memory()   # the allocator the notebooks and training run with
    for _ in range(warmup):
        fn()
    _sync(device)
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        _sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time_s or (max_calls is not None and calls >= max_calls):
            return calls, elapsed


def forward_throughput(model: nn.Module, height: int, width: int, batch: int = 1, in_channels: int = 1,
                       channels_last: bool = True, bf16: bool = False, min_time_s: float = 1.0,
                       warmup: int = 1, max_calls: int | None = None) -> dict:
    """Forward passes per second of ``model`` on ``batch`` x ``in_channels`` x ``height`` x ``width`` inputs.

    Runs on the model's device under ``torch.inference_mode``, fp32 or bf16 autocast,
    channels_last or contiguous (the model is converted in place and put in eval mode
    for the measurement, then back in its previous mode). Returns a dict with
    ``mpixel_per_s`` (output pixels per second / 1e6), ``s_per_call``, ``calls`` and
    the set-up (size, batch, precision, layout, device, threads, load average).
    """
    device = _device_of(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    x = torch.rand(batch, in_channels, height, width, device=device).contiguous(memory_format=fmt)
    was_training = model.training
    model.eval()

    def call():
        with _autocast(device, bf16):
            model(x)

    try:
        with torch.inference_mode():
            calls, elapsed = _time_calls(call, device, min_time_s, warmup, max_calls)
    finally:
        model.train(was_training)
    s_per_call = elapsed / calls
    return {"height": height, "width": width, "batch": batch,
            "precision": "bf16 autocast" if bf16 else "fp32",
            "layout": "channels_last" if channels_last else "NCHW", "device": machine.describe(device),
            "calls": calls, "s_per_call": s_per_call,
            "mpixel_per_s": batch * height * width / s_per_call / 1e6, **machine_state()}


def conv3x3_gflops(channels: int = 128, height: int = 128, width: int = 128, batch: int = 1,
                   channels_last: bool = True, bf16: bool = False, device="cpu", min_time_s: float = 1.0,
                   warmup: int = 2, max_calls: int | None = None) -> dict:
    """GFLOP/s this machine reaches on one ``channels`` -> ``channels`` 3x3 convolution (padding 1).

    The FLOPs per call are ``2 * 9 * channels^2 * height * width * batch`` (as counted
    by ``flops_per_pixel``; bias not counted). Returns ``gflops`` with the set-up.
    """
    device = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(device=device, memory_format=fmt).eval()
    x = torch.rand(batch, channels, height, width, device=device).contiguous(memory_format=fmt)
    flop = 2 * 9 * channels * channels * height * width * batch

    def call():
        with _autocast(device, bf16):
            conv(x)

    with torch.inference_mode():
        calls, elapsed = _time_calls(call, device, min_time_s, warmup, max_calls)
    s_per_call = elapsed / calls
    gflops = flop / s_per_call / 1e9
    return {"channels": channels, "height": height, "width": width, "batch": batch,
            "precision": "bf16 autocast" if bf16 else "fp32",
            "layout": "channels_last" if channels_last else "NCHW", "device": machine.describe(device),
            "flop_per_call": flop, "calls": calls, "s_per_call": s_per_call,
            "gflops": gflops if math.isfinite(gflops) else float("nan"), **machine_state()}


def measured(timing, *args, **kwargs) -> dict:
    """``timing(*args, **kwargs)`` (``forward_throughput`` or ``conv3x3_gflops``) as a notebook shows it: the
    measurement an earlier run stored in the results cache when nothing it depends on changed (the machine:
    ``machine.describe`` and ``cpu_info``, with the instruction set, ``ONEDNN_MAX_CPU_ISA`` and torch's threads, the
    core count, torch's version; the network's weights and code; the arguments; the timing code), else measured now and stored. A rerun with nothing changed then
    shows the same timings instead of new noise; the result keeps the load average and the time (``measured_at``)
    of the run that measured it.
    ``PAPERLIB_NO_CACHE=1`` measures afresh (benchmarks always do: they call ``timing`` itself)."""
    from . import cache
    nets = [a for a in args if isinstance(a, nn.Module)]
    device = _device_of(nets[0]) if nets else torch.device(kwargs.get("device", "cpu"))
    k = cache.key(what="timing", timing=timing.__name__,
                  code=cache.code_digest(f"paperlib.speed:{timing.__name__}", "paperlib.speed:_time_calls"),
                  args=[a for a in args if not isinstance(a, nn.Module)], kwargs=kwargs,
                  networks=[(cache.model_digest(m), cache.forward_digest(m)) for m in nets],
                  machine=machine.describe(device), cpu=machine.cpu_info(), cpu_count=os.cpu_count(),
                  torch=torch.__version__)
    hit = cache.load(k)
    if hit is not None:
        return hit[0]
    row = {**timing(*args, **kwargs), "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    cache.store(k, row)
    return row
