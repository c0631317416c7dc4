"""What this machine is, for precision choices and for every manifest and benchmark row.

CPUs differ between sessions and CI runs: some have AVX-512 with native bf16
(AVX512-BF16 or AMX), others only AVX2, where bf16 autocast is emulated and runs
tens of times slower than fp32 (a 128-channel 3x3 convolution measured 15 GFLOP/s
in bf16 vs 149 in fp32 on an AVX2 EPYC). So bf16 is a choice made per device:

* ``bf16_native(device)``: CUDA devices that support bf16; CPUs whose kernels
  dispatch at AVX-512 (``torch.backends.cpu.get_cpu_capability()``) and that
  have AVX512-BF16 or AMX. PyTorch's ``ATEN_CPU_CAPABILITY=avx2`` and oneDNN's
  ``ONEDNN_MAX_CPU_ISA=AVX2`` (an AVX-512 machine made to behave like an AVX2
  one) both make it False.
* ``resolve_bf16(setting, device)``: ``"auto"`` (every budget's default) means
  bf16 autocast exactly where it is native; True/False force it.
* ``cpu_info()`` / ``describe(device)``: the CPU model and the instruction set
  torch dispatches to, recorded in manifests and benchmark rows.
* ``keep_freed_memory()``: glibc's malloc hands every block over 32 MB straight
  back to the kernel when it is freed, so each layer's fresh activation of a
  large image (CAS-CNN on 480x720: 177 MB per 128-channel layer) is faulted in
  again, page by page, on every forward pass. Keeping freed memory in the heap
  for reuse made CAS-CNN (480x720), L4 and L8 (8 images of 321x481) forwards
  15-19 % faster on a 2-core EPYC, one thread. The arithmetic is the same, only where
  the buffers come from changes. The cost: a process keeps the memory it once
  used (L8, then CAS-CNN, on photos: 3.1 GB resident against a 1.8 GB peak by
  default). Called where networks run (``restorer``, ``train``, ``speed``) and
  where images are scored in bulk (``protocols.evaluate``: the metrics' float64
  planes are faulted in afresh too; PSNR, SSIM and PSNR-B of a LIVE1 image took
  55 ms with the default, 31 ms with it, gray; ``figures/benchmarks/metrics.md``);
  a no-op off glibc.

torch is imported only by the functions that ask it something, so that scoring
JPEG rows does not pay for importing it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from functools import lru_cache

__all__ = ["cpu_info", "bf16_native", "resolve_bf16", "precision_label", "describe", "keep_freed_memory",
           "NOT_NATIVE"]

NOT_NATIVE = "not native on this CPU"
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10")  # oneDNN ISA names that compute bf16 natively


@lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _flag(name: str) -> bool:
    import torch
    fn = getattr(torch.cpu, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except RuntimeError:
        return False


def cpu_info() -> dict:
    """CPU model, the ISA torch dispatches to, bf16/AMX flags, the oneDNN ISA cap (if set), threads."""
    import torch
    return {"model": _cpu_model(), "arch": platform.machine(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "avx512_bf16": _flag("_is_avx512_bf16_supported"), "amx": _flag("_is_amx_tile_supported"),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "threads": torch.get_num_threads(), "bf16_native": bf16_native("cpu")}


def bf16_native(device="cpu") -> bool:
    """Does ``device`` compute bf16 natively (so that autocast is faster than fp32, not emulated)?"""
    import torch
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if cap != "ALL" and not cap.startswith(_BF16_ISAS):
        return False
    return _flag("_is_avx512_bf16_supported") or _flag("_is_amx_tile_supported")


def resolve_bf16(setting, device="cpu") -> bool:
    """``"auto"`` -> ``bf16_native(device)``; a bool is taken as given (explicit choice)."""
    if setting == "auto":
        return bf16_native(device)
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"bf16 must be True, False or 'auto', got {setting!r}")


def precision_label(bf16: bool) -> str:
    return "bf16 autocast" if bf16 else "fp32"


def describe(device="cpu") -> str:
    """One line for manifests and tables: ``cpu (AMD EPYC, AVX2)`` or ``cuda (NVIDIA H200)``."""
    import torch
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({_cpu_model()}, {torch.backends.cpu.get_cpu_capability()})"
    return device.type


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameters (malloc.h)


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Serve blocks up to 1 GiB from malloc's heap and never trim it, so the memory of freed tensors is reused
    instead of being returned to the kernel and faulted in again (see the module doc). True where glibc took
    both settings; False elsewhere (macOS, musl, Windows), where nothing changes. The process keeps its peak
    memory until it exits."""
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
