"""`xray-exp data merge|convert|audit`: thin verbs over xray_exp.data.merge, .convert and .audit."""
import argparse
import sys
from pathlib import Path

from xray_exp.data.audit import audit_dataset, write_gallery
from xray_exp.data.convert import FORMATS, convert
from xray_exp.data.merge import load_aliases, plan_merge, write_merge
from xray_exp.data.yolo import check_output_dir


def register(subparsers) -> None:
    """Add merge, convert and audit to the `data` group."""
    p = subparsers.add_parser("merge", help="merge YOLO datasets, classes united by name (Path B)",
                              description="Merge YOLO datasets into images/{train,val,test} (a source's "
                                          "'valid' becomes 'val'); classes are matched by name ignoring "
                                          "case, every label id is remapped, file names get the source's "
                                          "name as prefix.")
    p.add_argument("data_yamls", nargs="+", type=Path, metavar="SRC_DATA_YAML")
    p.add_argument("--out", required=True, type=Path, help="output dataset folder")
    p.add_argument("--alias", type=Path, help="YAML mapping synonym: canonical class name")
    p.add_argument("--copy", action="store_true", help="copy images instead of hard-linking them")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_merge)

    p = subparsers.add_parser("convert", help="convert a Roboflow COCO or <loc> JSONL export to YOLO")
    p.add_argument("src", type=Path, metavar="SRC", help="export folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, type=Path, help="output dataset folder")
    p.add_argument("--images", type=Path, help="folder holding the images that JSONL records name by URL")
    p.add_argument("--copy", action="store_true", help="copy images instead of hard-linking them")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_convert)

    p = subparsers.add_parser("audit", help="check every label and image of a YOLO dataset",
                              description="Exit 0 clean, 1 warnings (with --strict), 2 errors; "
                                          "one line per finding: file:line: what.")
    p.add_argument("data_yaml", type=Path, metavar="DATA_YAML")
    p.add_argument("--gallery", type=Path, metavar="FILE.png", help="draw sample images with their labels")
    p.add_argument("-n", type=int, default=16, help="images in the gallery (default 16)")
    p.add_argument("--split", help="split drawn in the gallery (default: train)")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings")
    p.set_defaults(func=_audit)


def _merge(args: argparse.Namespace) -> int:
    check_output_dir(args.out, args.force, args.data_yamls)
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
    report = audit_dataset(args.data_yaml)
    for finding in report.findings:
        print(finding)
    print(report.describe())
    if args.gallery:
        print(f"gallery: {write_gallery(args.data_yaml, args.gallery, n=args.n, split=args.split)}")
    return report.exit_code(args.strict)
