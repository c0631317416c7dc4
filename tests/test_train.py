"""Patch sampling, the training loop (resume, budgets, DDP), checkpoints and the CAS-CNN recipe.

Everything runs on tiny synthetic images and (except the smoke/overfit tests)
a width-8 CAS-CNN, so the file takes seconds on a 2-core CPU. ``make test`` runs the
whole file a second time as an AVX2-only CPU would (marker ``isa``).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from paperlib import atomic, machine
from paperlib import checkpoint as ckpt
from paperlib import jpeg
from paperlib.models.cascnn import BUDGETS, CASCNN, load_cascnn, make_step_fn, train_cascnn
from paperlib.patches import PatchSampler, build_val_set
from paperlib.train import CHECKPOINT, LOG, MANIFEST, Prefetcher, TrainConfig, read_log, train, val_slope
from synthetic import synthetic_images

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.isa


IMAGES = synthetic_images()
TINY = dict(width=8, crop=16, batch=2, steps=6, ft_fraction=1 / 3, lr=1e-3, val_every=3, ckpt_every=0,
            n_val=2, bf16="auto")   # bf16 autocast where native + channels_last, as the cpu budget


def tiny_run(out, **kw):
    return train_cascnn(20, IMAGES, out, "smoke", val_images=IMAGES[:1], sources=["synthetic"],
                        progress=False, **{**TINY, **kw})


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def optim_equal(a: dict, b: dict) -> bool:
    return all(state_equal(a["state"][i], b["state"][i]) for i in a["state"]) and a["state"].keys() == b["state"].keys()


def losses(log):
    return [(r["step"], r["loss"], r.get("val_mse")) for r in log]


# ---- patches ---------------------------------------------------------------------------------

def test_sampler_deterministic_and_exact_codec():
    s = PatchSampler(IMAGES, crop=16, batch_size=4, qf=20, seed=7)
    j1, c1 = s.batch(5)
    j2, c2 = PatchSampler(IMAGES, crop=16, batch_size=4, qf=20, seed=7).batch(5)
    assert j1.shape == c1.shape == (4, 1, 16, 16) and j1.dtype == torch.float32
    assert torch.equal(j1, j2) and torch.equal(c1, c2)
    assert not torch.equal(c1, s.batch(6)[1])
    assert not torch.equal(c1, PatchSampler(IMAGES, 16, 4, 20, seed=8).batch(5)[1])
    assert 0 <= j1.min() and j1.max() <= 1
    for i in range(4):   # the JPEG patch is the exact codec's round trip of the clean crop
        jpg, clean, q = s.sample(5, i)
        assert q == 20 and np.array_equal(jpg, jpeg.roundtrip(clean, 20)[0])
        assert torch.equal(c1[i, 0], torch.from_numpy(clean).float() / 255)
        assert torch.equal(j1[i, 0], torch.from_numpy(jpg).float() / 255)
        assert not np.array_equal(jpg, clean)


def test_sampler_qf_range_and_rank_shards():
    s = PatchSampler(IMAGES, crop=8, batch_size=6, qf=(10, 12), seed=1)
    assert {s.sample(step, i)[2] for step in range(10) for i in range(6)} == {10, 11, 12}
    whole = s.batch(3)
    shards = [PatchSampler(IMAGES, 8, 6, (10, 12), seed=1, rank=r, world_size=2).batch(3) for r in range(2)]
    for k in range(2):
        assert torch.equal(whole[k], torch.cat([sh[k] for sh in shards]))
    with pytest.raises(ValueError):
        PatchSampler(IMAGES, 8, 5, 20, world_size=2)
    with pytest.raises(ValueError):
        PatchSampler(IMAGES, 64, 2, 20)   # crop larger than the images


def test_val_set_fixed():
    a = build_val_set(IMAGES, 20, crop=16, n=5, seed=0, batch_size=2)
    b = build_val_set(IMAGES, 20, crop=16, n=5, seed=0, batch_size=2)
    assert [x[0].shape[0] for x in a] == [2, 2, 1]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    whole = build_val_set(IMAGES, 10)
    assert [tuple(c.shape) for _, c in whole] == [(1, 1) + im.shape for im in IMAGES]
    assert np.array_equal((whole[0][0][0, 0] * 255).round().byte().numpy(), jpeg.roundtrip(IMAGES[0], 10)[0])


def test_prefetcher_same_batches_and_early_close():
    s = PatchSampler(IMAGES, 8, 2, 20)
    pf = Prefetcher(s.batch, range(3, 9), depth=2)
    for step, (j, c) in pf:
        assert torch.equal(c, s.batch(step)[1])
        if step == 5:
            break
    pf.close()
    assert not pf._thread.is_alive()
    assert [st for st, _ in Prefetcher(s.batch, range(2), depth=0)] == [0, 1]


# ---- checkpoints -----------------------------------------------------------------------------

class _NotATensor:
    pass


def test_checkpoint_atomic_and_weights_only(tmp_path):
    obj = {"step": 3, "w": torch.arange(4.0), "log": [{"loss": 1.5}], "betas": (0.9, 0.999)}
    ckpt.save_atomic(obj, tmp_path / "c.pt")
    back = ckpt.load(tmp_path / "c.pt")
    assert back["step"] == 3 and torch.equal(back["w"], obj["w"]) and back["log"] == obj["log"]
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]        # no temp file left
    torch.save({"x": _NotATensor()}, tmp_path / "evil.pt")
    with pytest.raises(Exception):
        ckpt.load(tmp_path / "evil.pt")                             # refused: not weights-only
    with pytest.raises(RuntimeError):                               # a failed write keeps the old file
        atomic.write(tmp_path / "c.pt", lambda f: (_ for _ in ()).throw(RuntimeError("disk full")))
    assert ckpt.load(tmp_path / "c.pt")["step"] == 3
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["c.pt", "evil.pt"]
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")                                          # the mode open() gives (umask), not 0600
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


# ---- the loop --------------------------------------------------------------------------------

def test_resume_after_step_budget_is_bit_for_bit(tmp_path):
    straight = tiny_run(tmp_path / "a")
    assert straight.finished and straight.step == 6
    part = tiny_run(tmp_path / "b", stop_at_step=3)               # "killed" at step 3 (ft starts at 4)
    assert not part.finished and part.step == 3
    assert ckpt.load(tmp_path / "b" / CHECKPOINT)["step"] == 3
    assert tiny_run(tmp_path / "b", stop_at_step=2).step == 3           # already past the stop: no step
    rest = tiny_run(tmp_path / "b")
    assert rest.finished and rest.step == 6
    assert state_equal(straight.models["cascnn"].state_dict(), rest.models["cascnn"].state_dict())
    a, b = (ckpt.load(tmp_path / d / CHECKPOINT) for d in "ab")
    assert optim_equal(a["optimizers"]["cascnn"], b["optimizers"]["cascnn"])
    assert losses(a["log"]) == losses(b["log"])
    assert [r["phase_ft"] for r in b["log"]] == [0, 0, 0, 0, 1, 1]
    assert read_log(tmp_path / "b")["step"].tolist() == list(range(1, 7))
    m = json.loads((tmp_path / "b" / MANIFEST).read_text())
    assert m["steps_done"] == 6 and m["finished"] and m["checkpoint_sha256"] == ckpt.sha256(tmp_path / "b" / CHECKPOINT)
    # the clock runs on over resumed chunks: the run's wall time is its chunks' sum, not the last chunk's (a
    # comparison with the straight run's time failed on a loaded machine, where one run's first step took seconds)
    assert m["wall_time_s"] == pytest.approx(sum(c["wall_s"] for c in m["chunks"]), abs=5e-3)
    assert min(c["wall_s"] for c in m["chunks"][:-1]) > 5e-3
    # every call is a chunk with its machine and precision: bf16 autocast only where this CPU has it natively
    assert [(c["start_step"], c["end_step"]) for c in m["chunks"]] == [(0, 3), (3, 4), (4, 6)]  # MS end: own call
    assert read_log(tmp_path / "b")["chunk"].tolist() == [0, 0, 0, 1, 2, 2]
    want = "bf16 autocast" if machine.bf16_native("cpu") else "fp32"
    assert m["precision"] == want and {c["precision"] for c in m["chunks"]} == {want}
    assert m["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability() and m["device"].startswith("cpu (")
    assert all(c["steps_per_s"] > 0 and c["cpu_capability"] == m["cpu"]["capability"] for c in m["chunks"])
    again = tiny_run(tmp_path / "b")                                 # nothing left to do
    with pytest.raises(ValueError, match="qf: 20 there, 30 here"):
        train_cascnn(30, IMAGES, tmp_path / "b", "smoke", progress=False, **TINY)
    assert again.finished and again.step == 6 and len(again.log) == 6


def test_time_budget_stops_and_resumes(tmp_path):
    ref = tiny_run(tmp_path / "ref", steps=4)
    first = tiny_run(tmp_path / "t", steps=4, time_budget_s=0.0)      # stops after its first step
    assert first.step == 1 and not first.finished
    m1 = json.loads((tmp_path / "t" / MANIFEST).read_text())
    rest = tiny_run(tmp_path / "t", steps=4)
    assert state_equal(ref.models["cascnn"].state_dict(), rest.models["cascnn"].state_dict())
    assert rest.wall_time_s >= m1["wall_time_s"]


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    torch.set_num_threads({threads})
    from test_train import tiny_run
    tiny_run({out!r}, steps=20, ckpt_every=1)
""")


def test_resume_after_sigkill_is_bit_for_bit(tmp_path):
    out = tmp_path / "killed"
    script = KILL_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"), threads=torch.get_num_threads(),
                                out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                if json.loads((out / MANIFEST).read_text())["steps_done"] >= 2:
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = ckpt.load(out / CHECKPOINT)["step"]
    assert 2 <= killed_at < 20
    resumed = tiny_run(out, steps=20)
    straight = tiny_run(tmp_path / "straight", steps=20)
    assert resumed.finished and len(resumed.log) == 20
    assert state_equal(straight.models["cascnn"].state_dict(), resumed.models["cascnn"].state_dict())
    assert losses(straight.log) == losses(resumed.log)


def test_two_models_noise_and_lr_schedule_resume(tmp_path):
    """A GAN-shaped recipe: two models, alternating updates, noise from torch's RNG, step decay, clipping, bf16."""

    def build():
        torch.manual_seed(0)
        models = {"G": nn.Conv2d(1, 1, 3, padding=1), "D": nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(1))}
        models["D"](torch.zeros(1, 1, 8, 8))
        opts = {"G": torch.optim.Adam(models["G"].parameters(), 1e-2),
                "D": torch.optim.Adam(models["D"].parameters(), 4e-2)}
        return models, opts

    def step_fn(models, opts, batch, step, ctx):
        jpg, clean = batch
        with ctx.autocast():
            fake = models["G"](jpg + 0.01 * torch.randn_like(jpg))
            d_loss = F.softplus(models["D"](fake.detach())).mean() + F.softplus(-models["D"](clean)).mean()
        ctx.update(d_loss.float(), "D")
        with ctx.autocast():
            g_loss = F.softplus(-models["D"](fake)).mean() + 10 * F.mse_loss(fake.float(), clean)
        ctx.update(g_loss.float(), "G")
        return {"d": d_loss.item(), "g": g_loss.item()}

    s = PatchSampler(IMAGES, 8, 4, (10, 30), seed=3)
    cfg = dict(steps=6, lr_milestones=(2, 4), lr_gamma=0.5, grad_clip=0.5, bf16="auto", progress=False)
    m1, o1 = build()
    r1 = train(TrainConfig(str(tmp_path / "x"), **cfg), m1, o1, step_fn, s.batch)
    m2, o2 = build()
    train(TrainConfig(str(tmp_path / "y"), stop_at_step=3, **cfg), m2, o2, step_fn, s.batch)
    m3, o3 = build()
    r3 = train(TrainConfig(str(tmp_path / "y"), **cfg), m3, o3, step_fn, s.batch)
    for k in ("G", "D"):
        assert state_equal(m1[k].state_dict(), m3[k].state_dict()), k
        assert o3[k].param_groups[0]["lr"] == o3[k].param_groups[0]["initial_lr"] * 0.25
    assert [r["lr"] for r in r1.log] == [1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3]
    assert [(r["d"], r["g"]) for r in r1.log] == [(r["d"], r["g"]) for r in r3.log]
    assert all(np.isfinite([r["d"], r["g"], r["patches_per_s"], r["data_wait"]]).all() for r in r3.log)


# ---- distributed -----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Tolerances from the arithmetic, not from one CPU. DDP promises that each rank's gradient is the mean of the
# ranks' half-batch gradients; the single process sums the same terms in another order, so the two agree up
# to fp32 rounding of that reduction, relative to the tensor's own scale: with at most a few thousand terms
# per entry here, |dg| <= GRAD_RTOL * max|g| (GRAD_RTOL = 1e-5, ~84 fp32 epsilons of the largest entry;
# measured on an AVX2 EPYC: 4.3e-7). The step is checked with SGD, whose update is linear in the gradient:
# |dw| <= lr * |dg| + one rounding of w. (Adam's first step g / (|g| + eps) magnifies a rounding difference in
# a tiny gradient entry by up to 1/eps; it is not a property of DDP and is not tested here.)
GRAD_RTOL, SGD_LR = 1e-5, 0.1


def _sgd_run(out, rank=0, world=1):
    """One SGD step of the real loop on a width-8 CAS-CNN, global batch 2 sharded over ``world`` ranks."""
    torch.manual_seed(0)
    net = CASCNN(width=8)
    opt = torch.optim.SGD(net.parameters(), lr=SGD_LR)
    sampler = PatchSampler(IMAGES, 16, 2, 20, seed=0, rank=rank, world_size=world)
    cfg = TrainConfig(str(out), steps=1, bf16=False, progress=False)
    return train(cfg, {"cascnn": net}, {"cascnn": opt}, make_step_fn(ft_start=1), sampler.batch)


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist
    res = tiny_run(Path(out) / "ddp", steps=1, val_every=0)   # the recipe itself (Adam) under DDP
    sgd = _sgd_run(Path(out) / "ddp-sgd", rank, world).models["cascnn"]
    torch.save({"grad": {n: p.grad.clone() for n, p in sgd.named_parameters()},
                "weights": {k: v.clone() for k, v in sgd.state_dict().items()},
                "recipe_weights": {k: v.clone() for k, v in res.models["cascnn"].state_dict().items()},
                "log": res.log}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_gloo_gradients_match_single_process(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    before = CASCNN(width=8).state_dict()
    net = _sgd_run(tmp_path / "single").models["cascnn"]   # same global batch, one process
    single = tiny_run(tmp_path / "single-recipe", steps=1, val_every=0)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, p in net.named_parameters():
        scale = float(p.grad.abs().max())
        for rk in ranks:
            dg = float((rk["grad"][name] - p.grad).abs().max())
            assert dg <= GRAD_RTOL * scale, (name, dg, scale)
        dw = (ranks[0]["weights"][name] - p.detach()).abs()
        bound = SGD_LR * GRAD_RTOL * scale + torch.finfo(torch.float32).eps * before[name].abs()
        assert (dw <= bound).all(), (name, float(dw.max()))
        if name.endswith("conv.weight"):   # the step did move them (PReLU slopes of all-positive maps may not)
            assert not torch.equal(p.detach(), before[name]), name
    for rk in ranks[1:]:   # every rank holds the same model after the all-reduce, bit for bit
        for k, v in ranks[0]["weights"].items():
            assert torch.equal(rk["weights"][k], v), k
        for k, v in ranks[0]["recipe_weights"].items():
            assert torch.equal(rk["recipe_weights"][k], v), k
    assert ranks[0]["log"][0]["loss"] == pytest.approx(single.log[0]["loss"], rel=1e-5)   # mean over ranks
    assert ranks[0]["log"][0]["patches_per_s"] > 0
    m = json.loads((tmp_path / "ddp" / MANIFEST).read_text())
    assert m["world_size"] == 2 and m["data"]["sampler"]["batch_size"] == 2


# ---- CAS-CNN recipe, full width ----------------------------------------------------------------

def test_smoke_budget_writes_manifest_and_fp16(tmp_path):
    res = train_cascnn(20, IMAGES, tmp_path, "smoke", val_images=IMAGES[:1], sources=["synthetic"], progress=False)
    b = BUDGETS["smoke"]
    assert res.finished and res.step == b.steps
    log = read_log(tmp_path)
    assert len(log) == b.steps and np.isfinite(log["loss"]).all() and np.isfinite(log["val_mse"].dropna()).all()
    m = json.loads((tmp_path / MANIFEST).read_text())
    for key in ("budget", "config", "data", "steps_done", "wall_time_s", "git_commit", "torch_version",
                "checkpoint_sha256"):
        assert key in m, key
    assert m["budget"] == "smoke" and m["data"]["sources"] == ["synthetic"] and m["data"]["n_images"] == 3
    assert m["model"]["params"] == 5_147_054
    assert m["checkpoint_sha256"] == ckpt.sha256(tmp_path / CHECKPOINT)
    assert (tmp_path / LOG).exists()
    net = load_cascnn(tmp_path / "cascnn_fp16.pt")
    assert torch.equal(net.Ahat.conv.weight, res.models["cascnn"].Ahat.conv.weight.half().float())


def test_overfits_a_fixed_batch(tmp_path):
    """The paper's network, MS loss then output loss, on one fixed batch: the loss must fall."""
    torch.manual_seed(0)
    net = CASCNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    batch = PatchSampler(IMAGES, 16, 2, 20, seed=0).batch(0)
    cfg = TrainConfig(str(tmp_path), steps=8, progress=False)
    res = train(cfg, {"cascnn": net}, {"cascnn": opt}, make_step_fn(ft_start=6), lambda step: batch)
    out_mse = [r["out_mse"] for r in res.log]
    assert np.isfinite(out_mse).all()
    assert out_mse[-1] < 0.5 * out_mse[0], out_mse


def test_val_slope_is_the_least_squares_line_through_the_window():
    import pandas as pd
    steps = np.arange(1, 4001)
    val = np.where(steps % 250 == 0, 0.5 + 0.3 * steps / 1000, np.nan)      # +0.3 dB per 1000 steps exactly
    log = pd.DataFrame({"step": steps, "val_ipsnr": val})
    assert val_slope(log) == pytest.approx(0.3)
    # a curve that is flat over the last 1000 steps but rose before: only the window counts
    flat = np.where(steps > 3000, 1.0, 1.0 - (3000 - steps) / 1000)
    log = pd.DataFrame({"step": steps, "val_ipsnr": np.where(steps % 250 == 0, flat, np.nan)})
    assert abs(val_slope(log)) < 1e-12 < val_slope(log, window=4000)
    # fewer than two validation points in the window: no slope
    assert np.isnan(val_slope(log.iloc[:300]))


def test_on_curve_places_a_checkpoint_on_its_validation_curve():
    import pandas as pd

    from paperlib.reproduce import on_curve
    steps = np.arange(1, 3001)
    val = np.where(steps % 250 == 0, np.minimum(steps, 2000) / 1000, np.nan)   # rises 1 dB/1000 steps, flat after 2000
    log = pd.DataFrame({"step": steps, "val_ipsnr": val})
    mid = on_curve(log, 1600)              # an export taken mid-run (e.g. the end of an MS phase)
    assert mid["val_step"] == 1500 and mid["val_ipsnr"] == pytest.approx(1.5)
    assert mid["slope_db_per_1000"] == pytest.approx(1.0) and mid["flattened"] is False
    end = on_curve(log, 3000)
    assert end["flattened"] is True and end["best_val_ipsnr"] == pytest.approx(2.0) and end["best_step"] == 2000
    assert on_curve(log.iloc[:100], 100)["flattened"] is None


def test_validation_curves_table_and_reading():
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from paperlib.reproduce import curves_reading, validation_curves
    steps = np.arange(1, 3001)
    rising = pd.DataFrame({"step": steps, "val_ipsnr": np.where(steps % 250 == 0, steps / 1000, np.nan)})
    flat = pd.DataFrame({"step": steps, "val_ipsnr": np.where(steps % 250 == 0, 0.7, np.nan)})
    table, fig = validation_curves({"a": (rising, 3000), "b": (flat, 3000), "a-ms": (rising, 120)})
    assert list(table.network) == ["a", "b", "a-ms"]
    assert table.flattened.tolist() == [False, True, None]
    assert table.val_step.iloc[2] is None or np.isnan(table.val_step.iloc[2])   # no validation point before 120
    text = curves_reading(table)
    assert "1 of 3 networks were still climbing" in text and "a +1.00" in text and "1 have fewer" in text
    assert len(fig.axes[0].lines) == 2 + 2 + 1 + 1          # three curves, two markers, the zero line


def test_ctrl_c_finishes_the_step_saves_and_resumes_bit_for_bit(tmp_path):
    """SIGINT in the middle of step 3 (ckpt_every=0: no periodic checkpoint): the step finishes, the checkpoint
    holds step 3, Interrupted is raised, and resuming gives the uninterrupted run's weights."""
    from paperlib.models import cascnn as cascnn_module
    from paperlib.train import Interrupted
    real = cascnn_module.make_step_fn

    def step_fn_that_is_interrupted(*a, **k):
        inner = real(*a, **k)

        def step_fn(nets, opts, batch, step, ctx):
            if step == 2:                              # 0-based: the third step
                os.kill(os.getpid(), signal.SIGINT)    # delivered to the main thread, between bytecodes
            return inner(nets, opts, batch, step, ctx)
        return step_fn

    previous = signal.getsignal(signal.SIGINT)
    cascnn_module.make_step_fn = step_fn_that_is_interrupted
    try:
        with pytest.raises(Interrupted, match="stopped by SIGINT at step 3 of 6"):
            tiny_run(tmp_path / "b", ckpt_every=0)
    finally:
        cascnn_module.make_step_fn = real
    assert signal.getsignal(signal.SIGINT) is previous              # the handler is put back
    assert ckpt.load(tmp_path / "b" / CHECKPOINT)["step"] == 3
    rest = tiny_run(tmp_path / "b")
    straight = tiny_run(tmp_path / "a")
    assert rest.finished and state_equal(straight.models["cascnn"].state_dict(), rest.models["cascnn"].state_dict())
    assert losses(straight.log) == losses(rest.log)


def test_pick_budget_by_name_or_object():
    from paperlib.models import onetomany, posterior, qgcn
    from paperlib.train import pick_budget
    for recipe in (qgcn, onetomany, posterior):
        assert recipe.get_budget("cpu") is recipe.BUDGETS["cpu"]
        assert recipe.get_budget(recipe.BUDGETS["smoke"]) is recipe.BUDGETS["smoke"]
    with pytest.raises(ValueError, match="unknown budget 'nope'; one of \\['a'\\]"):
        pick_budget("nope", {"a": 1})
