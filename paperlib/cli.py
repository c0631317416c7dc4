"""Command line: ``python -m paperlib {baseline,evaluate,restore,models,data,weights,check-figures} ...``."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from . import data, protocols

IMAGE_SUFFIXES = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm", ".pgm", ".webp"}


LOSSY = {".jpg", ".jpeg", ".webp"}


def image_files(folder) -> list:
    """Image files directly in ``folder``, sorted by name; a clear error if there are none.

    They are the uncompressed references of ``baseline``/``evaluate``: lossy files among them
    get a warning (their own artifacts are then part of "the original").
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    lossy = [p.name for p in files if p.suffix.lower() in LOSSY]
    if lossy:
        print(f"warning: {len(lossy)} reference(s) are already lossy ({', '.join(lossy[:3])}"
              f"{', ...' if len(lossy) > 3 else ''}): their own compression artifacts count as 'original'",
              file=sys.stderr)
    return files


def _json_float(x: float):
    """Full-precision float; infinite PSNR (identical images) as the string "inf" (JSON has no inf)."""
    return x if math.isfinite(x) else str(x)


def cmd_baseline(args) -> int:
    files = image_files(args.images)
    per_image = protocols.evaluate(files, args.qf, args.protocol, progress=not args.json)
    summary = protocols.summarize(per_image)
    rows = [{"qf": int(r.qf), "n_images": int(r.n_images), "psnr": float(r.jpeg_psnr),
             "ssim": float(r.jpeg_ssim), "psnrb": float(r.jpeg_psnrb)} for r in summary.itertuples()]
    if args.json:
        print(json.dumps([{k: _json_float(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows]))
    else:
        print(f"JPEG baseline, protocol {args.protocol!r}: {protocols.get(args.protocol).description}")
        print(f"{'QF':>4} {'images':>6} {'PSNR':>8} {'SSIM':>7} {'PSNR-B':>8}")
        for r in rows:
            print(f"{r['qf']:>4} {r['n_images']:>6} {r['psnr']:>8.2f} {r['ssim']:>7.4f} {r['psnrb']:>8.2f}")
    return 0


def _metrics(r, prefix: str) -> dict:
    keys = ("psnr", "ssim", "psnrb") + tuple(k for k in ("consistency", "per_pixel_std") if hasattr(r, f"{prefix}_{k}"))
    return {k: _json_float(float(getattr(r, f"{prefix}_{k}"))) for k in keys}


def cmd_evaluate(args) -> int:
    from . import zoo
    from .evaluation import evaluate_network
    from .restorer import Restorer
    restorer = Restorer.load(args.model)
    proto = protocols.get(args.protocol)
    if proto.color != restorer.color:
        raise ValueError(f"{args.model} restores {'colour' if restorer.color else 'gray'} images; use a "
                         f"{'colour (e.g. color-qgcn)' if restorer.color else 'gray'} protocol, not {proto.name!r}")
    if args.samples is not None and not restorer.stochastic:
        raise ValueError(f"{args.model} is deterministic: --samples is for stochastic models")
    samples = (args.samples or 8) if restorer.stochastic else None   # stochastic: + consistency, per-pixel STD
    files = image_files(args.images)
    per_image, _ = evaluate_network(files, args.qf, restorer, protocol=proto, progress=not args.json, seed=args.seed,
                                    samples=samples)
    rows = [{"qf": int(r.qf), "n_images": int(r.n_images), "jpeg": _metrics(r, "jpeg"),
             "restored": _metrics(r, "restored")} for r in protocols.summarize(per_image).itertuples()]
    if args.json:
        print(json.dumps(rows))
        return 0
    meta = zoo.info(args.model)
    print(f"{args.model}: trained at QF {meta['qf']}, budget {meta['budget']!r}, {meta['steps']} steps; "
          f"protocol {proto.name!r}" + (f"; one draw of Z scored (seed {args.seed}), {samples} draws for the "
                                       "per-pixel STD; consistency = RMSE of JPEG(restored) vs JPEG(original), gray "
                                       "levels" if samples else ""))
    print(f"{'QF':>4} {'images':>6}  {'JPEG PSNR/SSIM/PSNR-B':>24}  {'restored PSNR/SSIM/PSNR-B':>26}"
          + (f"  {'consistency':>11} {'per-pixel STD':>13}" if samples else ""))
    for r in rows:
        j, o = r["jpeg"], r["restored"]
        print(f"{r['qf']:>4} {r['n_images']:>6}  {j['psnr']:8.2f} {j['ssim']:7.4f} {j['psnrb']:7.2f}  "
              f"{o['psnr']:10.2f} {o['ssim']:7.4f} {o['psnrb']:7.2f}"
              + (f"  {o['consistency']:11.4f} {o['per_pixel_std']:13.4f}" if samples else ""))
    return 0


LOSSLESS = {".png", ".bmp", ".tif", ".tiff"}


def _save(img, dst: Path, info: dict | None = None) -> None:
    """Write a restored image losslessly, atomically, with the input's EXIF (orientation included) and ICC
    profile where the format carries them (PNG, TIFF; BMP has no place for them)."""
    from PIL import Image

    from . import atomic
    fmt = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}[dst.suffix.lower()]
    extra = {}
    if info and fmt != "BMP":
        extra = {k: info[k] for k in ("exif", "icc_profile") if info.get(k)}
    atomic.write(dst, lambda f: Image.fromarray(img).save(f, format=fmt, **extra))


def _sample_paths(dst: Path, samples: int | None) -> list:
    """``OUT.png`` for one restoration, ``OUT-0.png`` ... ``OUT-{K-1}.png`` for ``--samples K``."""
    if samples is None:
        return [dst]
    return [dst.with_name(f"{dst.stem}-{k}{dst.suffix}") for k in range(samples)]


def cmd_restore(args) -> int:
    """Restore real JPEG files with any committed model, using each file's own quantization tables."""
    from tqdm.auto import tqdm

    from .jpeg import UnsupportedJPEG
    from .restorer import Restorer
    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise ValueError(f"{src} does not exist")
    if args.samples is not None and args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise ValueError(f"{dst} exists and is not a folder")
        if dst.resolve() == src.resolve():
            raise ValueError("the output folder must differ from the input folder (inputs are never overwritten)")
        jobs = [(p, dst / f"{p.stem}.png") for p in sorted(src.iterdir())
                if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".jpe", ".jfif")]
        if not jobs:
            raise ValueError(f"no .jpg/.jpeg files in {src}")
    else:
        if dst.suffix.lower() not in LOSSLESS:
            raise ValueError(f"write the restored image losslessly ({', '.join(sorted(LOSSLESS))}), "
                             f"not {dst.suffix or 'no extension'}")
        jobs = [(src, dst)]
    folder = src.is_dir()
    outs = {d: _sample_paths(d, args.samples) for _, d in jobs}
    if any(o.exists() and o.resolve() == s_.resolve() for s_, d in jobs for o in outs[d]):
        raise ValueError("the output is the input file; inputs are never overwritten")
    done = [(s_, d) for s_, d in jobs if all(o.exists() for o in outs[d])]
    if done and not args.force:
        if not folder:
            raise ValueError(f"{dst} exists; use --force to replace it")
        # a rerun of a folder (e.g. after Ctrl-C) goes on where it stopped: finished outputs are complete files
        jobs = [j for j in jobs if j not in done]
        print(f"{len(done)} of {len(done) + len(jobs)} outputs exist already and are kept (--force redoes them)")
    restorer = Restorer.load(args.model)
    if args.samples not in (None, 1) and not restorer.stochastic:
        raise ValueError(f"{args.model} is deterministic: every sample would be the same image "
                         "(--samples is for stochastic models)")
    failed = []
    bar = tqdm(jobs, desc="restore", unit="file", disable=not folder or args.quiet)
    for s_, d_ in bar:
        try:
            out, info = restorer.restore_file(s_, seed=args.seed, samples=args.samples)
            if args.project:
                out = _project(out, s_)
        except (UnsupportedJPEG, OSError) as err:
            if not folder:
                raise
            failed.append((s_, str(err)))
            continue
        for img, o in zip(out if args.samples is not None else [out], outs[d_]):
            _save(img, o, info)   # atomic: an interrupted run leaves no partial file
        qf = info["qf_luma"]
        written = d_ if args.samples is None else f"{outs[d_][0].name} ... {outs[d_][-1].name}"
        if args.project:
            written = f"{written} (projected onto the input's quantization cell)"
        msg = (f"{s_.name}: {'colour' if info['color'] else 'gray'} {info['size'][1]}x{info['size'][0]}, "
               f"tables {'= IJG QF ' + str(qf) if qf else 'not IJG (custom)'} -> {written}")
        kept = [k for k, v in (("EXIF", info.get("exif")), ("ICC profile", info.get("icc_profile"))) if v]
        if kept and d_.suffix.lower() != ".bmp":
            turn = info.get("orientation", 1)
            msg += f" ({' and '.join(kept)} copied{f'; EXIF orientation {turn} kept, not applied' if turn != 1 else ''})"
        bar.write(msg) if folder else print(msg)
    for s_, why in failed:
        print(f"skipped {why}", file=sys.stderr)
    if folder:
        print(f"restored {len(jobs) - len(failed)} of {len(jobs)} JPEG files into {dst}")
    return 1 if failed else 0


def _project(out, src: Path):
    """Ours-P: the output(s) moved onto the quantization cell of the JPEG file ``src`` (``posterior.project``)."""
    from .diffjpeg import read_coefficients
    from .jpeg import UnsupportedJPEG
    from .models.posterior import project
    try:
        return project(out, read_coefficients(src))
    except ValueError as err:
        raise UnsupportedJPEG(f"{src.name}: cannot project onto its quantization cell ({err})") from None


def cmd_models(args) -> int:
    from . import zoo
    if not zoo.names():
        print("no trained models committed")
    for name in zoo.names():
        m = zoo.info(name)
        print(f"{name:16s} {m['arch']:8s} QF {m['qf']!s:>6}  budget {m['budget']:6s} {m['steps']:>6} steps "
              f"{m['wall_time_s'] / 60:6.1f} min  data: {', '.join(m['data']['sources'])}"
              + ("" if m.get("file") else "  (log only, no weights)"))
    return 0


def cmd_data(args) -> int:
    if args.action == "list":
        for name in data.names():
            if name == data.DEMO:
                print(f"{name:22s} scikit-image sample photos (built in; not comparable with the papers)")
                continue
            m = data.manifest(name)
            splits = ", ".join(f"{k} {v}" for k, v in m["splits"].items())
            print(f"{name:22s} {splits}")
        return 0
    if args.action == "pack":
        if not args.out or args.max_mib is None or not args.name:
            raise ValueError("data pack needs SPEC ... --out DIR --max-mib N (specs: name[:split])")
        counts = data.pack(args.name, args.out, args.max_mib, data_root=args.root)
        for spec, (taken, total) in counts.items():
            print(f"{spec:28s} {taken} of {total} files")
        print(f"OK: training pack in {args.out} (a data root: PAPERLIB_DATA={args.out}; only training reads it)")
        return 0
    if not args.name:
        raise ValueError("give a dataset name: " + ", ".join(data.names()))
    for name in args.name:
        if name != data.DEMO:
            data.manifest(name)   # an unknown name stops the command before any dataset is checked
    failed = 0
    for name in args.name:
        if name == data.DEMO:
            print(f"demo: {len(data.image_paths(data.DEMO))} built-in images")
            continue
        try:
            if args.root:
                folder = Path(args.root) / name
            else:
                folder = data.locate(name, split=args.split, download_missing=args.action == "fetch")
            paths = data.verify(name, folder, args.split)
        except (data.DataNotFound, data.ChecksumError, FileNotFoundError) as err:
            print(f"FAILED: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"OK: {name}{'/' + args.split if args.split else ''}: {len(paths)} files in {folder} match the manifest")
    return 1 if failed else 0


def cmd_weights(args) -> int:
    from . import weights
    if args.action == "list":
        for name in weights.names():
            print(f"{name:10s} {weights.manifest(name)['file']:42s} {weights.status(name)[1]}")
        return 0
    if not args.name:
        raise ValueError("give a weight name: " + ", ".join(weights.names()))
    try:
        if args.action == "verify" and args.path:
            path = weights.verify(args.name, args.path)
        else:
            path = weights.resolve(args.name, args.path, download=args.action == "fetch")
    except (weights.WeightsNotFound, weights.ChecksumError, FileNotFoundError) as err:
        one_line = str(err).replace(":\n  - ", ": ").replace("\n  - ", "; ").replace("\n", ". ")
        print(f"FAILED: {one_line}", file=sys.stderr)
        return 1
    print(f"OK: {args.name}: {path} matches the manifest's sha256")
    return 0


def cmd_check_figures(args) -> int:
    from . import figcheck
    cells = figcheck.check(fast=args.fast, data_root=args.data_root)
    bad = [c for c in cells if not c.ok]
    print(f"{len(cells) - len(bad)} of {len(cells)} pinned cells of figures/ equal their recomputation "
          f"at the printed precision" + (f"; {len(bad)} differ:" if bad else ""))
    for c in bad:
        print(f"  {c}", file=sys.stderr)
    return 1 if bad else 0


def _add_eval_arguments(p) -> None:
    p.add_argument("--images", required=True, help="folder of uncompressed images")
    p.add_argument("--qf", type=int, nargs="+", required=True, help="quality factor(s), 1..100")
    p.add_argument("--protocol", default="gray", choices=sorted(protocols.PROTOCOLS))
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per QF")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m paperlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("baseline", help="mean PSNR / SSIM / PSNR-B of JPEG-compressed images (the JPEG row)")
    _add_eval_arguments(p)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("evaluate", help="JPEG vs restored PSNR / SSIM / PSNR-B of a committed model (stochastic "
                                        "models: also JPEG consistency and per-pixel STD)")
    p.add_argument("--model", required=True, help="a name from `python -m paperlib models`")
    p.add_argument("--seed", type=int, default=0, help="noise seed of a stochastic model (one sample per image)")
    p.add_argument("--samples", type=int, default=None,
                   help="draws of Z per image for the per-pixel STD of a stochastic model (default 8)")
    _add_eval_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("restore", help="restore real JPEG files (a file or a folder) with any committed model")
    p.add_argument("input", help="a .jpg file, or a folder of them")
    p.add_argument("output", help="output image (.png/.bmp/.tif), or a folder for folder input")
    p.add_argument("--model", required=True, help="e.g. qgcn-color, qgcn-gray, cascnn-q20, l4-residual-q10")
    p.add_argument("--seed", type=int, default=0, help="noise seed of a stochastic model")
    p.add_argument("--samples", type=int, default=None,
                   help="K samples of a stochastic model: OUT-0.png ... OUT-{K-1}.png")
    p.add_argument("--project", action="store_true",
                   help="Ours-P (Man et al. Eq. 11): move each output onto the input file's quantization cell, so "
                        "that it re-compresses to the input (margin 0.25, alternated with the 8-bit range)")
    p.add_argument("--force", action="store_true", help="replace existing outputs (never the input)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("models", help="list the committed trained models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("data", help="list, verify or fetch benchmark datasets, or pack training sets for a GPU")
    p.add_argument("action", choices=["list", "verify", "fetch", "pack"])
    p.add_argument("name", nargs="*", help="dataset names (see `data list`); for pack: training specs name[:split]")
    p.add_argument("--root", help=f"data root to check or pack from (default: search order, incl. ${data.ENV_VAR})")
    p.add_argument("--split", help="only this split")
    p.add_argument("--out", help="pack: the new data root to write")
    p.add_argument("--max-mib", type=float, default=None, help="pack: size cap of the copied files, MiB")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("check-figures", help="recompute pinned cells of the committed tables from the committed "
                                             "weights (fresh, no cache) and compare at the printed precision")
    p.add_argument("--fast", action="store_true", help="one image or row per network (the test suite's subset)")
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=cmd_check_figures)

    p = sub.add_parser("weights", help="list, verify or fetch pretrained weight files (VGG-16/19, FID Inception)")
    p.add_argument("action", choices=["list", "verify", "fetch"])
    p.add_argument("name", nargs="?", help="weight name (see `weights list`)")
    p.add_argument("--path", help="a weight file to check (default: search order, incl. $PAPERLIB_WEIGHTS)")
    p.set_defaults(func=cmd_weights)
    return parser


def _one_line(err: BaseException) -> str:
    """An error as one line: multi-line messages (e.g. every place a dataset was looked for) joined with '; '."""
    return "; ".join(part.strip(" -") for part in str(err).splitlines() if part.strip(" -"))


def main(argv=None) -> int:
    """Run a command; bad input ends with one line on stderr and exit status 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:   # bad arguments, unreadable or missing files, unwritable outputs
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished outputs are complete, nothing partial was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
