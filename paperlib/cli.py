"""Command line: ``python -m paperlib {baseline,data} ...``."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from . import data, protocols

IMAGE_SUFFIXES = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm", ".pgm", ".webp"}


def image_files(folder) -> list:
    """Image files directly in ``folder``, sorted by name; a clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"error: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SystemExit(f"error: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
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
    if not args.name:
        raise SystemExit("error: give a dataset name: " + ", ".join(data.names()))
    if args.name == data.DEMO:
        print(f"demo: {len(data.image_paths(data.DEMO))} built-in images")
        return 0
    try:
        if args.root:
            folder = Path(args.root) / args.name
            paths = data.verify(args.name, folder, args.split)
        else:
            folder = data.locate(args.name, split=args.split, download_missing=args.action == "fetch")
            paths = data.verify(args.name, folder, args.split)
    except (data.DataNotFound, data.ChecksumError, FileNotFoundError) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    print(f"OK: {args.name}{'/' + args.split if args.split else ''}: {len(paths)} files in {folder} match the manifest")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m paperlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("baseline", help="mean PSNR / SSIM / PSNR-B of JPEG-compressed images (the JPEG row)")
    p.add_argument("--images", required=True, help="folder of uncompressed images")
    p.add_argument("--qf", type=int, nargs="+", required=True, help="quality factor(s), 1..100")
    p.add_argument("--protocol", default="gray", choices=sorted(protocols.PROTOCOLS))
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per QF")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("data", help="list, verify or fetch benchmark datasets")
    p.add_argument("action", choices=["list", "verify", "fetch"])
    p.add_argument("name", nargs="?", help="dataset name (see `data list`)")
    p.add_argument("--root", help=f"data root to check (default: search order, incl. ${data.ENV_VAR})")
    p.add_argument("--split", help="only this split")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
