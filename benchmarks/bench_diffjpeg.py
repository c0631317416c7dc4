"""paperlib.diffjpeg: speed beside Pillow, and full-image LIVE1 accuracy against the exact codecs.

    PAPERLIB_DATA=/path/to/datasets .venv/bin/python benchmarks/bench_diffjpeg.py [--device cuda] [--threads 1]

Writes ``figures/benchmarks/diffjpeg_speed`` (forward / forward+backward Mpixel/s at batch
32 x 128^2, gray and 4:2:0 colour, QF 50, beside Pillow's encode+decode of the same images in the
same run; best of several repeats, since the machine may be shared) and
``figures/benchmarks/diffjpeg_accuracy`` (RMSE in gray levels and the share of identical pixels, all
29 LIVE1 images at full size, QF 5..95: gray (MATLAB luma) against Pillow, colour with each codec
design against libjpeg 9e and against Pillow).
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import pandas as pd
import torch
from PIL import Image

from paperlib import data, diffjpeg, jpeg, machine, protocols, report

QFS = list(range(5, 100, 5))
OUT = report.ROOT / "figures" / "benchmarks"


def _tensor(imgs, device) -> torch.Tensor:
    a = torch.from_numpy(np.stack(imgs)).float()
    return (a[:, None] if a.ndim == 3 else a.permute(0, 3, 1, 2)).contiguous().to(device)


def _array(x: torch.Tensor) -> np.ndarray:
    x = x.detach().cpu().double()
    return (x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)).numpy()


def _best(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def _crops(paths, n: int, size: int, color: bool) -> list:
    """``n`` deterministic size x size crops, cycling through the images and offsets."""
    out, k = [], 0
    while len(out) < n:
        img = protocols.COLOR_QGCN.reference(paths[k % len(paths)]) if color else \
            protocols.GRAY.reference(paths[k % len(paths)])
        shift = (k // len(paths)) * size
        top = min((img.shape[0] - size) // 2 + shift, img.shape[0] - size)
        left = (img.shape[1] - size) // 2
        out.append(np.ascontiguousarray(img[top: top + size, left: left + size]))
        k += 1
    return out


def speed(paths, device: str, repeats: int) -> pd.DataFrame:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for color in (False, True):
        imgs = _crops(paths, 32, 128, color)
        x = _tensor(imgs, device)
        mpix = x.shape[0] * x.shape[2] * x.shape[3] / 1e6

        def pillow(imgs=imgs):
            for a in imgs:
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, format="JPEG", quality=50, subsampling=2)
                with Image.open(io.BytesIO(buf.getvalue())) as im:
                    np.asarray(im)

        def forward(codec, x=x):
            with torch.no_grad():
                diffjpeg.roundtrip(x, 50, codec=codec)

        def backward(codec, x=x):
            xg = x.clone().requires_grad_()
            diffjpeg.roundtrip(xg, 50, codec=codec).sum().backward()

        t_pil = _best(pillow, repeats, lambda: None)
        codecs = ("pillow", "libjpeg9") if color else ("pillow",)
        for codec in codecs:
            t_fw = _best(lambda codec=codec: forward(codec), repeats, sync)
            t_bw = _best(lambda codec=codec: backward(codec), repeats, sync)
            rows.append({"images": "RGB 4:2:0" if color else "gray",
                         "diffjpeg codec": codec if color else "pillow = libjpeg9 (gray)",
                         "forward Mpix/s": mpix / t_fw, "forward+backward Mpix/s": mpix / t_bw,
                         "Pillow encode+decode Mpix/s": mpix / t_pil, "forward / Pillow": t_pil / t_fw})
    return pd.DataFrame(rows)


def accuracy(paths, device: str) -> pd.DataFrame:
    gray = [protocols.GRAY.reference(p) for p in paths]
    rgb = [protocols.COLOR_QGCN.reference(p) for p in paths]
    rows = []
    for qf in QFS:
        acc = {k: [0.0, 0, 0] for k in ("gray", "9e|9e", "9e|pil", "pil|pil", "pil|9e")}

        def add(key, ours, ref, acc=acc):
            d = ours - ref.astype(np.float64)
            acc[key][0] += float((d ** 2).sum())
            acc[key][1] += int((d == 0).sum())
            acc[key][2] += d.size

        for g, c in zip(gray, rgb):
            add("gray", _array(diffjpeg.roundtrip(_tensor([g], device), qf, codec="pillow"))[0],
                protocols.GRAY.compress(g, qf)[0])
            ref9, refp = protocols.COLOR_QGCN.compress(c, qf)[0], jpeg.roundtrip(c, qf, codec="pillow")[0]
            ours9 = _array(diffjpeg.roundtrip(_tensor([c], device), qf, codec="libjpeg9"))[0]
            oursp = _array(diffjpeg.roundtrip(_tensor([c], device), qf, codec="pillow"))[0]
            add("9e|9e", ours9, ref9)
            add("9e|pil", ours9, refp)
            add("pil|pil", oursp, refp)
            add("pil|9e", oursp, ref9)
        row = {"qf": qf}
        names = {"gray": "gray vs Pillow", "9e|9e": "colour (libjpeg9 design) vs libjpeg 9e",
                 "9e|pil": "colour (libjpeg9 design) vs Pillow", "pil|pil": "colour (pillow design) vs Pillow",
                 "pil|9e": "colour (pillow design) vs libjpeg 9e"}
        for key, name in names.items():
            sse, same, n = acc[key]
            row[f"{name}: RMSE"] = float(np.sqrt(sse / n))
            row[f"{name}: identical"] = same / n
        rows.append(row)
        print(f"QF {qf}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "qf" and "RMSE" in k), flush=True)
    return pd.DataFrame(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (Pillow is single-threaded)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = data.image_paths("live1")
    where = machine.describe(args.device) + (f", {args.threads} torch thread(s)" if args.device == "cpu" else "")
    sp = speed(paths, args.device, args.repeats)
    print(sp.to_string(index=False))
    report.save_table(sp, OUT, "diffjpeg_speed", floatfmt=".2f", caption=(
        f"paperlib.diffjpeg round trip at QF 50, batch 32 x 128x128 LIVE1 crops, best of {args.repeats} "
        f"(float64 exact integer arithmetic; forward under no_grad), beside Pillow "
        f"{Image.__version__} (libjpeg-turbo, one thread) encoding and decoding the same 32 images in the "
        f"same run. Machine: {where}."))
    acc = accuracy(paths, args.device)
    report.save_table(acc, OUT, "diffjpeg_accuracy", floatfmt=".4f", caption=(
        "paperlib.diffjpeg.roundtrip against the exact codecs on all 29 LIVE1 images at full size: RMSE in "
        "gray levels and share of identical pixel values. Gray: MATLAB luma (gray protocol), Pillow codec "
        "(identical to libjpeg 9e for gray). Colour: RGB 4:2:0; the 'libjpeg9' design against libjpeg 9e "
        "(colour-qgcn protocol) and against Pillow (libjpeg-turbo), the 'pillow' design against both. "
        f"Machine: {machine.describe(args.device)}."))


if __name__ == "__main__":
    main()
