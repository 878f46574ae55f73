"""`xray-exp predict`: draw a model's detections on images, plus a gallery PNG."""
import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="draw a model's detections on images, plus a gallery PNG")
    p.add_argument("source", type=Path, metavar="SOURCE", help="an image or a folder of images")
    p.add_argument("--weights", type=Path, required=True, help="a .pt checkpoint")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--device", help="cpu, 0, ... (default: as training, GPU 0 when there is one, else cpu)")
    p.add_argument("--imgsz", type=int, help="image size (default: the size the weights were trained at)")
    p.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    from xray_exp.analysis.predict import predict

    written = predict(args.weights, args.source, args.out, args.conf, args.device, args.imgsz)
    print(f"{len(written) - 1} images drawn into {args.out}; gallery: {written[-1]}")
    return 0
