"""`xray-exp data synth|merge|convert|audit`: thin verbs over xray_exp.data."""
import argparse
import sys
from pathlib import Path

from xray_exp.data.audit import ALIGN_SAMPLE, audit_dataset, write_gallery
from xray_exp.data.convert import FORMATS, convert
from xray_exp.data.merge import check_merge_output, load_aliases, plan_merge, write_merge
from xray_exp.data.synthetic import build_dataset, write_preview
from xray_exp.errors import XrayExpError


def register(subparsers) -> None:
    """Add synth, merge, convert and audit to the `data` group."""
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
    p.set_defaults(func=_synth)

    p = subparsers.add_parser("merge", help="merge YOLO datasets, classes united by name (Path B)",
                              description="Merge YOLO datasets into images/{train,val,test} (a source's "
                                          "'valid' becomes 'val'); classes are matched by name ignoring "
                                          "case, every label id is remapped, file names get the source's "
                                          "name as prefix.")
    p.add_argument("data_yamls", nargs="+", type=Path, metavar="SRC_DATA_YAML")
    p.add_argument("--alias", type=Path, help="YAML mapping synonym: canonical class name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _output_options(p)
    p.set_defaults(func=_merge)

    p = subparsers.add_parser("convert", help="convert a Roboflow COCO or <loc> JSONL export to YOLO")
    p.add_argument("src", type=Path, metavar="SRC", help="export folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--images", type=Path, help="folder holding the images that JSONL records name by URL")
    _output_options(p)
    p.set_defaults(func=_convert)

    p = subparsers.add_parser("audit", help="check every label and image of a YOLO dataset",
                              description="Exit 0 clean, 1 warnings (with --strict), 2 errors; "
                                          "one line per finding: file:line: what.")
    p.add_argument("data_yaml", type=Path, metavar="DATA_YAML")
    p.add_argument("--gallery", type=Path, metavar="FILE.png", help="draw sample images with their labels")
    p.add_argument("-n", type=int, default=16, help="images in the gallery (default 16)")
    p.add_argument("--split", help="split drawn in the gallery (default: train)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 on warnings; labels that do not sit on the objects become an error (exit 2)")
    p.add_argument("--no-alignment", action="store_true",
                   help="skip the check that labels sit on image content (transposed, flipped, shifted, scaled)")
    p.add_argument("--align-sample", type=int, default=ALIGN_SAMPLE, metavar="N",
                   help=f"images the alignment check samples (default {ALIGN_SAMPLE})")
    p.set_defaults(func=_audit)

    p = subparsers.add_parser("mislabel", help="copy a YOLO dataset with a conversion mistake on every box",
                              description="Write a copy of a dataset whose every box carries one of the usual "
                                          "conversion mistakes (e.g. transposed: <loc> y, x read as x, y), to "
                                          "measure what such labels cost. Images are hard-linked; the source is "
                                          "never modified; the output is atomic.")
    p.add_argument("data_yaml", type=Path, metavar="SRC_DATA_YAML")
    p.add_argument("--mistake", required=True, help="transposed, flipped-vertically, flipped-horizontally, "
                   "shifted-half-a-box-up-left, ... (names as the audit reports them)")
    _output_options(p)
    p.set_defaults(func=_mislabel)


def _output_options(p: argparse.ArgumentParser) -> None:
    """--out, --copy and --force: the same for every action that writes a dataset from others."""
    p.add_argument("--out", required=True, type=Path, help="output dataset folder (never inside, equal to or "
                                                           "holding an input)")
    p.add_argument("--copy", action="store_true", help="copy images instead of hard-linking them")
    p.add_argument("--force", action="store_true", help="replace an earlier output folder")


def _mislabel(args: argparse.Namespace) -> int:
    from xray_exp.data.mislabel import mislabel_dataset

    print(mislabel_dataset(args.data_yaml, args.mistake, args.out, force=args.force, copy=args.copy).describe())
    return 0


def _merge(args: argparse.Namespace) -> int:
    check_merge_output(args.data_yamls, args.out, args.force)
    plan = plan_merge(args.data_yamls, load_aliases(args.alias) if args.alias else None)
    print(plan.describe())
    if sys.stdin.isatty() and not args.yes:
        if input(f"write {args.out}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing written")
            return 1
    result = write_merge(plan, args.out, copy=args.copy, force=args.force)
    print(f"wrote {result.data_yaml} ({result.linked} images linked, {result.copied} copied)")
    return 0


def _convert(args: argparse.Namespace) -> int:
    result = convert(args.format, args.src, args.out, images=args.images, copy=args.copy, force=args.force)
    print(result.describe())
    return 0


def _audit(args: argparse.Namespace) -> int:
    report = audit_dataset(args.data_yaml, alignment=None if args.no_alignment else args.align_sample,
                           alignment_errors=args.strict)
    for finding in report.findings:
        print(finding)
    print(report.describe())
    if args.gallery:
        print(f"gallery: {write_gallery(args.data_yaml, args.gallery, n=args.n, split=args.split)}")
    return report.exit_code(args.strict)


def _synth(args: argparse.Namespace) -> int:
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
