"""One generic training loop for every paper's recipe (nanoGPT-style: read it top to bottom).

A recipe hands ``train`` its models and optimizers (dicts, so a GAN's generator
and critic fit as well as CAS-CNN's single network), a ``batch_fn(step)`` that
makes the training batch of a step (``patches.PatchSampler``), and a step
function::

    def step_fn(models, optimizers, batch, step, ctx) -> dict[str, float]:
        x, y = batch
        with ctx.autocast():                 # bf16 autocast if TrainConfig.bf16
            out = models["net"](x)
        loss = F.mse_loss(out.float(), y)
        ctx.update(loss, "net")              # zero_grad, backward, clip, optimizer step
        return {"loss": loss.item()}

It may call ``ctx.update`` several times (alternating critic/generator updates,
an R1 penalty built with ``torch.autograd.grad``, ...). ``models`` are the
DistributedDataParallel wrappers when running distributed. Randomness inside a
step (noise inputs, ...) should use torch's global RNG: the loop reseeds it from
``(seed, step, rank)`` before every step, so it is reproduced on resume.

What the loop does, and nothing more:

* the learning-rate schedule: each optimizer group keeps the lr it was created
  with (``initial_lr``) times ``lr_gamma ** (milestones passed)`` (step decay;
  a loss/phase switch is the recipe's business, it gets ``step``);
* optional gradient-norm clipping, channels_last, bf16 autocast (``bf16="auto"``: only where the
  device computes bf16 natively, see ``paperlib.machine``; the precision is in the bar's title);
* a tqdm bar (losses, patches/s), a per-step log (losses, lr, patches/s, share
  of step time spent waiting for data) kept in the checkpoint and written as
  ``log.csv``, validation every ``val_every`` steps;
* checkpoints ``checkpoint.pt`` every ``ckpt_every`` steps, on stopping and at the
  end (atomic; models, optimizers, step, log, wall time) plus ``manifest.json``;
  every call is a *chunk*: its machine, precision, steps and step rate are kept in
  the checkpoint and listed in the manifest's ``chunks`` (the log's ``chunk``
  column says which chunk made each step);
* resume: if ``out_dir/checkpoint.pt`` exists, training goes on from it. On CPU
  the final weights are bit-for-bit those of an uninterrupted run: the batches
  and the RNG are functions of the step number, and the rest is in the file;
* budgets: ``steps`` (the schedule's length), ``stop_at_step`` and
  ``time_budget_s`` (stop early, checkpoint, resumable);
* Ctrl-C or SIGTERM: the step in flight finishes, a checkpoint is written and
  ``Interrupted`` is raised (the recipes' command lines print one line, exit 130);
* distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) models are wrapped in
  DDP (gloo on CPU, nccl on CUDA); each rank's ``batch_fn`` makes its own shard;
  rank 0 validates and writes files.

Batches are made one or two steps ahead in a background thread (the JPEG codec
releases the GIL), so data work overlaps compute without changing any batch.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import machine
from .patches import derive_seed

__all__ = ["TrainConfig", "TrainResult", "StepContext", "train", "init_distributed", "Prefetcher", "check_resume",
           "data_manifest", "add_run_arguments",
           "read_log", "read_manifest", "val_slope", "FLAT_DB_PER_1000", "Interrupted", "run_main", "pick_budget", "CHECKPOINT",
           "MANIFEST", "LOG"]

CHECKPOINT, MANIFEST, LOG = "checkpoint.pt", "manifest.json", "log.csv"


@dataclass
class TrainConfig:
    out_dir: str
    steps: int                            # total length of the run; the lr schedule is defined on it
    lr_milestones: tuple[int, ...] = ()   # step decay: lr *= lr_gamma at each of these steps
    lr_gamma: float = 0.1
    grad_clip: float | None = None        # max global grad norm per optimizer, None = off
    channels_last: bool = True
    bf16: bool | str = "auto"             # autocast(bfloat16) around the forward passes; "auto": where native
    device: str = "cpu"
    val_every: int = 0                    # 0: validate only at the end
    ckpt_every: int = 0                   # 0: checkpoint only on stopping / at the end
    seed: int = 0
    stop_at_step: int | None = None       # stop (and checkpoint) once this many steps are done
    time_budget_s: float | None = None    # stop (and checkpoint) after this many seconds of this call
    resume: bool = True                   # continue from out_dir/checkpoint.pt if it exists
    prefetch: int = 2                     # batches made ahead in a thread (0: in the loop)
    progress: bool = True
    ddp_find_unused: bool = False


@dataclass
class TrainResult:
    out_dir: Path
    step: int                 # steps done in total
    finished: bool            # step == cfg.steps
    wall_time_s: float        # summed over all resumed chunks
    log: list = field(repr=False, default_factory=list)
    manifest: dict = field(repr=False, default_factory=dict)
    models: dict = field(repr=False, default_factory=dict)   # the trained (unwrapped) models


def init_distributed(device: str = "cpu") -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class StepContext:
    """What a step function needs from the loop: autocast and the update rule."""

    def __init__(self, optimizers: dict, cfg: TrainConfig, rank: int, world_size: int):
        self.optimizers, self.cfg, self.rank, self.world_size = optimizers, cfg, rank, world_size
        self.device_type = torch.device(cfg.device).type
        self.bf16 = machine.resolve_bf16(cfg.bf16, cfg.device)

    def autocast(self):
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16)

    def update(self, loss: torch.Tensor, name: str, retain_graph: bool = False) -> None:
        """Zero the grads of optimizer ``name``'s parameters, backprop ``loss``, clip, step."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward(retain_graph=retain_graph)
        if self.cfg.grad_clip is not None:
            params = [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        opt.step()


class Prefetcher:
    """Iterate ``batch_fn(step)`` for ``steps`` with up to ``depth`` batches made ahead in a thread."""

    def __init__(self, batch_fn: Callable, steps: range, depth: int = 2):
        self.batch_fn, self.steps, self.depth = batch_fn, steps, depth
        if depth > 0:
            self._q: queue.Queue = queue.Queue(maxsize=depth)
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._work, daemon=True, name="prefetch")
            self._thread.start()

    def _work(self):
        for step in self.steps:
            try:
                item = (step, self.batch_fn(step), None)
            except BaseException as e:  # hand the error to the consumer
                item = (step, None, e)
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or item[2] is not None:
                return

    def __iter__(self):
        if self.depth <= 0:
            for step in self.steps:
                yield step, self.batch_fn(step)
            return
        for _ in self.steps:
            step, batch, err = self._q.get()
            if err is not None:
                raise err
            yield step, batch

    def close(self):
        if self.depth > 0:
            self._stop.set()
            self._thread.join(timeout=10)


def _to(x, device, channels_last: bool):
    if isinstance(x, torch.Tensor):
        x = x.to(device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device, channels_last) for v in x)
    if isinstance(x, dict):
        return {k: _to(v, device, channels_last) for k, v in x.items()}
    return x


def _batch_len(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.shape[0]
    if isinstance(x, (tuple, list)):
        return _batch_len(x[0])
    if isinstance(x, dict):
        return _batch_len(next(iter(x.values())))
    raise TypeError(f"cannot tell the batch size of {type(x)}")


def _git_commit() -> str | None:
    """HEAD of the checkout; in a copy without ``.git`` (a remote machine), ``$PAPERLIB_GIT_COMMIT``."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("PAPERLIB_GIT_COMMIT")


def _git_clean() -> bool | None:
    """Was the checkout free of uncommitted changes to tracked files? None where git cannot tell."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, timeout=10, cwd=Path(__file__).resolve().parent)
        if out.returncode == 0:
            return not out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def _csv_text(log: list[dict]) -> str:
    cols: dict = {}
    for row in log:
        cols.update(dict.fromkeys(row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n")
    w.writeheader()
    w.writerows(log)
    return buf.getvalue()


def check_resume(out_dir, resume: bool = True, **identity) -> None:
    """Refuse to resume ``out_dir`` if its manifest describes another run (e.g. another QF or budget)."""
    prev = Path(out_dir) / MANIFEST
    if not (resume and prev.exists()):
        return
    have = json.loads(prev.read_text())
    want = json.loads(json.dumps(identity))  # tuples become lists, as stored
    diff = [f"{k}: {have.get(k)!r} there, {v!r} here" for k, v in want.items() if have.get(k) != v]
    if diff:
        raise ValueError(f"{out_dir} holds another run ({'; '.join(diff)}); use another out_dir or resume=False")


def data_manifest(sources, sampler, val_images=None) -> dict:
    """The ``data`` entry of a run manifest: where the training pairs come from."""
    return {"sources": list(sources), "n_images": len(sampler.images),
            "n_val_images": len(val_images) if val_images is not None else 0, "sampler": sampler.describe()}


def parse_qf(text: str):
    """A command-line QF: ``"20"`` -> 20, ``"1-60"`` -> (1, 60) (a QF drawn per patch)."""
    lo, sep, hi = text.partition("-")
    return (int(lo), int(hi)) if sep else int(lo)


def qf_label(qf) -> str:
    """``20`` -> ``"20"``, ``(1, 60)`` -> ``"1-60"`` (zoo names)."""
    return f"{qf[0]}-{qf[1]}" if isinstance(qf, (tuple, list)) else str(qf)


def add_run_arguments(ap, train_sets, val_sets) -> None:
    """The command-line options every recipe's ``_main`` shares (data, output folder, budget overrides)."""
    ap.add_argument("--train", nargs="+", default=list(train_sets), help="dataset specs name[:split]")
    ap.add_argument("--val", nargs="*", default=list(val_sets), help="dataset specs name[:split]")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=None, help="seconds for this call")
    ap.add_argument("--steps", type=int, default=None, help="override the budget's steps")
    ap.add_argument("--init-from", default=None, help="fp16 export or checkpoint to start from")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def read_manifest(out_dir) -> dict:
    """``manifest.json`` of a run (what trained it, how far, on which machine)."""
    return json.loads((Path(out_dir) / MANIFEST).read_text())


def read_log(out_dir):
    """``log.csv`` of a run as a pandas DataFrame (one row per step; ``val_*`` where validated)."""
    import pandas as pd
    return pd.read_csv(Path(out_dir) / LOG)


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT) or SIGTERM after finishing its step and saving a checkpoint."""


class _GracefulStop:
    """While training: the first SIGINT/SIGTERM asks the loop to stop after the step in flight (with a checkpoint,
    so nothing is lost); a second one stops at once (the step in flight is lost, the last checkpoint stays).
    Signal handlers can only be set in the main thread; elsewhere this does nothing."""

    def __init__(self, name: str):
        self.name, self.received, self.previous = name, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        tqdm.write(f"{self.name}: {self.received}: stopping after this step, with a checkpoint (again: stop at once)")

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def pick_budget(budget, budgets: dict):
    """A recipe's budget: ``budgets[budget]`` for a name, the object itself when it is already a budget."""
    if not isinstance(budget, str):
        return budget
    if budget not in budgets:
        raise ValueError(f"unknown budget {budget!r}; one of {sorted(budgets)}")
    return budgets[budget]


def run_main(main: Callable) -> None:
    """A recipe's command line: a run stopped by Ctrl-C or SIGTERM ends with one line and exit status 130."""
    try:
        main()
    except Interrupted as err:
        print(err, file=sys.stderr)
        raise SystemExit(130) from None


# A validation curve has flattened when it gains less than this per 1000 steps (the fidelity issue's criterion
# for stopping a CPU continuation).
FLAT_DB_PER_1000 = 0.02


def val_slope(log, window: int = 1000, column: str = "val_ipsnr") -> float:
    """dB per 1000 steps that ``column`` gained over the last ``window`` steps of a training ``log``: the slope
    of the least-squares line through the validation points in ``(last step - window, last step]``, times
    1000. NaN with fewer than two validation points in the window."""
    import numpy as np
    v = log.dropna(subset=[column])
    v = v[v.step > v.step.max() - window] if len(v) else v
    if len(v) < 2:
        return float("nan")
    return float(np.polyfit(v.step.to_numpy(float), v[column].to_numpy(float), 1)[0] * 1000)


def train(cfg: TrainConfig, models: dict, optimizers: dict, step_fn: Callable, batch_fn: Callable,
          val_fn: Callable | None = None, manifest: dict | None = None) -> TrainResult:
    """Run (or resume) ``step_fn`` from the checkpoint's step to ``cfg.steps``; see the module doc.

    val_fn(models) -> dict of floats, called under ``torch.no_grad`` on rank 0
    with the plain (unwrapped) models in eval mode; keys are logged as ``val_<key>``.
    manifest: extra JSON fields for ``manifest.json`` (budget name, data description, ...).
    """
    out = Path(cfg.out_dir)
    machine.keep_freed_memory()
    rank, world = init_distributed(cfg.device)
    main = rank == 0
    if main:
        out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    for m in models.values():
        m.to(device=device, memory_format=fmt)   # in place: the optimizers keep their parameters
    for opt in optimizers.values():
        for g in opt.param_groups:
            g.setdefault("initial_lr", g["lr"])

    # ---- resume ----------------------------------------------------------------------------
    start, log, wall_before, chunks = 0, [], 0.0, []
    path = out / CHECKPOINT
    if cfg.resume and path.exists():
        state = ckpt.load(path, map_location=device)
        for k, m in models.items():
            m.load_state_dict(state["models"][k])
        for k, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        start, log, wall_before = state["step"], list(state["log"]), state["wall_time_s"]
        chunks = list(state.get("chunks", []))

    nets = {k: DDP(m, find_unused_parameters=cfg.ddp_find_unused)
            if world > 1 and any(p.requires_grad for p in m.parameters()) else m
            for k, m in models.items()}
    ctx = StepContext(optimizers, cfg, rank, world)
    precision = machine.precision_label(ctx.bf16)
    git_clean = _git_clean() if main else None
    t0 = time.perf_counter()
    chunk = {"steps": 0, "step_s": 0.0, "wait_s": 0.0, "patches": 0}
    this_chunk = {"chunk": len(chunks), "start_step": start, "end_step": start, "device": machine.describe(device),
                  "cpu_capability": torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else None,
                  "precision": precision, "bf16_setting": cfg.bf16, "world_size": world,
                  "threads": torch.get_num_threads(), "torch_version": str(torch.__version__),
                  "steps_per_s": None, "patches_per_s": None, "wall_s": 0.0}
    chunks.append(this_chunk)
    saved = {"wall_time_s": wall_before, "manifest": {}}

    def wall() -> float:
        return wall_before + time.perf_counter() - t0

    def save(step: int) -> None:
        saved["wall_time_s"] = wall()
        this_chunk.update(end_step=step, wall_s=round(time.perf_counter() - t0, 3),
                          steps_per_s=chunk["steps"] / chunk["step_s"] if chunk["step_s"] else None,
                          patches_per_s=chunk["patches"] / chunk["step_s"] if chunk["step_s"] else None)
        if main:
            state = {"step": step, "wall_time_s": saved["wall_time_s"], "log": log, "config": asdict(cfg),
                     "chunks": chunks,
                     "models": {k: m.state_dict() for k, m in models.items()},
                     "optimizers": {k: o.state_dict() for k, o in optimizers.items()}}
            ckpt.save_atomic(state, path)
            ckpt.write_text_atomic(_csv_text(log), out / LOG)
            saved["manifest"] = _manifest(step, state["wall_time_s"])
            ckpt.write_json_atomic(saved["manifest"], out / MANIFEST)
        if world > 1:
            dist.barrier()

    def _manifest(step: int, wall_s: float) -> dict:
        pps = chunk["patches"] / chunk["step_s"] if chunk["step_s"] else None
        return {**(manifest or {}), "steps_done": step, "steps_total": cfg.steps,
                "finished": step >= cfg.steps, "wall_time_s": round(wall_s, 3),
                "config": asdict(cfg), "world_size": world, "checkpoint": CHECKPOINT,
                "checkpoint_sha256": ckpt.sha256(path),
                "throughput_last_chunk": {"patches_per_s": pps, "data_wait_share":
                                          chunk["wait_s"] / chunk["step_s"] if chunk["step_s"] else None,
                                          "steps": chunk["steps"]},
                "git_commit": _git_commit(), "git_clean": git_clean, "torch_version": torch.__version__,
                "python": platform.python_version(), "threads": torch.get_num_threads(),
                "device": machine.describe(device), "precision": precision,
                "cpu": machine.cpu_info() if device.type == "cpu" else None, "chunks": chunks}

    def validate(step: int) -> dict:
        if not (main and val_fn):
            return {}
        for m in models.values():
            m.eval()
        with torch.no_grad():
            res = {f"val_{k}": float(v) for k, v in val_fn(models).items()}
        for m in models.values():
            m.train()
        return res

    # ---- the loop ----------------------------------------------------------------------------
    step = start
    bar = tqdm(total=cfg.steps, initial=start, disable=not (cfg.progress and main), dynamic_ncols=True,
               desc=f"{out.name} [{precision}]", unit="step")
    end = cfg.steps if cfg.stop_at_step is None else max(start, min(cfg.steps, cfg.stop_at_step))
    batches = Prefetcher(batch_fn, range(start, end), cfg.prefetch)
    graceful = _GracefulStop(out.name).__enter__()
    try:
        for m in models.values():
            m.train()
        tick = time.perf_counter()
        for step, batch in batches:
            got = time.perf_counter()
            batch = _to(batch, device, cfg.channels_last)
            factor = cfg.lr_gamma ** sum(step >= s for s in cfg.lr_milestones)
            for opt in optimizers.values():
                for g in opt.param_groups:
                    g["lr"] = g["initial_lr"] * factor
            torch.manual_seed(derive_seed(cfg.seed, step, rank))
            losses = step_fn(nets, optimizers, batch, step, ctx)
            done = time.perf_counter()

            n = _batch_len(batch) * world
            step_s, wait_s = done - tick, got - tick
            chunk["steps"] += 1
            chunk["step_s"] += step_s
            chunk["wait_s"] += wait_s
            chunk["patches"] += n
            step += 1
            stop = step < cfg.steps and (step >= end or graceful.received is not None or (
                cfg.time_budget_s is not None and time.perf_counter() - t0 >= cfg.time_budget_s))
            losses = {k: float(v) for k, v in losses.items()}
            if world > 1:  # log the mean over ranks; every rank must stop at the same step
                vals = torch.tensor([*losses.values(), float(stop)], dtype=torch.float64)
                dist.all_reduce(vals)
                losses = dict(zip(losses, (vals[:-1] / world).tolist()))
                stop = bool(vals[-1] > 0)
            row = {"step": step, "chunk": this_chunk["chunk"], **losses,
                   "lr": factor * next(iter(optimizers.values())).param_groups[0]["initial_lr"],
                   "patches_per_s": n / step_s, "data_wait": wait_s / step_s}
            if step == cfg.steps or (cfg.val_every and step % cfg.val_every == 0):
                row.update(validate(step))
            log.append(row)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "step" and k != "lr"}, refresh=False)

            if stop or step == cfg.steps or (cfg.ckpt_every and step % cfg.ckpt_every == 0):
                save(step)
            if stop:
                break
            tick = time.perf_counter()
    finally:
        graceful.__exit__()
        batches.close()
        bar.close()
    if graceful.received is not None and step < cfg.steps:
        raise Interrupted(f"{out}: stopped by {graceful.received} at step {step} of {cfg.steps}, checkpoint saved; "
                          "run the same command again to resume")

    if not saved["manifest"] and main and (out / MANIFEST).exists():  # nothing left to do on resume
        saved["manifest"] = json.loads((out / MANIFEST).read_text())
    return TrainResult(out, step, step >= cfg.steps, saved["wall_time_s"], log, saved["manifest"], models)
