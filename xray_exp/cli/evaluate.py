"""`xray-exp eval`: mAP, per-class AP50 and the guide's accuracy of weights on a split."""
import argparse
import time
from pathlib import Path

from xray_exp.analysis.evaluate import EVAL_FILE, GUIDE_CONF
from xray_exp.cli.table import fmt, note, print_table


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="mAP, per-class AP50 and the guide's accuracy of weights on a split")
    p.add_argument("--weights", type=Path, required=True, help="a .pt checkpoint (e.g. RUN/weights/best.pt)")
    p.add_argument("--data", type=Path, required=True, help="the dataset's data.yaml")
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--conf", type=float, default=GUIDE_CONF,
                   help=f"confidence threshold of the guide's accuracy (default {GUIDE_CONF}; mAP uses Ultralytics' own)")
    p.add_argument("--out", type=Path, help="output folder (default outputs/eval/<date>_<time>)")
    p.add_argument("--device", help="cpu, 0, 0,1 ... (default: as training, GPU 0 when there is one, else cpu)")
    p.add_argument("--imgsz", type=int, help="image size (default: the size the weights were trained at)")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from xray_exp.analysis.evaluate import evaluate

    out = args.out or Path("outputs/eval") / time.strftime("%Y-%m-%d_%H-%M-%S")
    record = evaluate(args.weights, args.data, args.split, args.conf, out, args.device, args.imgsz)
    m = record["metrics"]
    title = (f"{args.split}: mAP50 {m['mAP50']:.4f}  mAP50-95 {m['mAP50-95']:.4f}  precision {m['precision']:.4f}  "
             f"recall {m['recall']:.4f}  accuracy@{args.conf:g} {fmt(record['accuracy'])}  "
             f"detection rate {fmt(record['detection_rate'])}  ({record['images']} labelled images, "
             f"{record['background_images']} background, {record['background_detected']} of them with a detection)")
    rows = [{"class": name, "AP50": fmt(record["per_class_ap50"].get(name)), "images": acc["images"],
             "correct": acc["correct"], "accuracy": fmt(acc["accuracy"])}
            for name, acc in record["per_class"].items()]
    print_table(["class", "AP50", "images", "correct", "accuracy"], rows, title)
    note(Path(out) / EVAL_FILE)
    note(Path(record["confusion_matrix"]))
    return 0
