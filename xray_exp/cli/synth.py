"""`xray-exp data synth`: build the synthetic X-ray dataset and/or draw a preview of it."""
import argparse
from pathlib import Path

from xray_exp.errors import XrayExpError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="generate synthetic X-ray baggage scans with exact YOLO labels",
        description="Generate a YOLO dataset of synthetic dual-energy X-ray baggage scans (images/, labels/, "
                    "data.yaml). The same sizes and seed give byte-identical labels and images "
                    "(with the same numpy and OpenCV versions). "
                    "The build is atomic: a failed run leaves nothing behind.",
        epilog="With --preview and no --n-train/--n-val, nothing is generated: the preview is drawn from the "
               "dataset already in --out. With both, the dataset is built first, then previewed.")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset folder to create")
    p.add_argument("--n-train", type=int, metavar="N", help="number of training images (required to build)")
    p.add_argument("--n-val", type=int, metavar="N", help="number of validation images (required to build)")
    p.add_argument("--n-test", type=int, default=0, metavar="N", help="number of test images (default 0: no test split)")
    p.add_argument("--imgsz", type=int, default=640, metavar="S", help="image side in pixels, >= 32 (default 640)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="generator seed (default 0)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists (only once the new one is complete)")
    p.add_argument("--preview", type=Path, metavar="FILE.png",
                   help="write a grid of the first 16 training images with their boxes drawn")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xray_exp.data.synthetic import build_dataset, write_preview

    building = args.n_train is not None or args.n_val is not None
    if not building and args.preview is None:
        raise XrayExpError("give --n-train and --n-val to build a dataset, or --preview FILE.png to draw an existing one")
    if building and (args.n_train is None or args.n_val is None):
        raise XrayExpError("building needs both --n-train and --n-val")
    data_yaml = args.out / "data.yaml"
    if building:
        data_yaml = build_dataset(args.out, args.n_train, args.n_val, args.n_test, args.imgsz, args.seed, args.force)
        print(f"dataset: {data_yaml}")
    if args.preview is not None:
        print(f"preview: {write_preview(data_yaml, args.preview)}")
    return 0
