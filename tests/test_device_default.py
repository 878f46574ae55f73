"""`xray-exp eval` and `predict` choose the device as training does: none given -> Ultralytics picks GPU 0 when
there is one, else the CPU (conf/train.yaml `device: null`)."""
import inspect

import torch


def test_eval_and_predict_default_to_the_training_device_choice(compose_train):
    from ultralytics.utils.torch_utils import select_device

    from xray_exp.analysis.evaluate import evaluate
    from xray_exp.analysis.predict import detect, predict
    from xray_exp.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["eval", "--weights", "w.pt", "--data", "d.yaml"]).device is None
    assert parser.parse_args(["predict", "images", "--weights", "w.pt", "--out", "o"]).device is None
    for function in (evaluate, predict, detect):
        assert inspect.signature(function).parameters["device"].default is None, function.__name__
    assert compose_train().device is None
    assert select_device(None, verbose=False).type == ("cuda" if torch.cuda.is_available() else "cpu")
