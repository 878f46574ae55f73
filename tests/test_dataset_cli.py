"""`xray-exp data merge|convert|audit` as users run them: exit codes, one-line errors, nothing left behind."""
import json
import os
import pty
import subprocess
from pathlib import Path

import cv2
import numpy as np
import yaml

from helpers import run_cli, tree_hashes

def cli(*args, **kw) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=60, **kw)


def dataset(root: Path, names: list[str], labels: dict[str, dict[str, str]]) -> Path:
    """images/<split>/<stem>.jpg (distinct 16x16 images) + labels; labels[split][stem] = file text."""
    for k, (split, files) in enumerate(labels.items()):
        for j, (stem, text) in enumerate(files.items()):
            for kind, ext in (("images", ".jpg"), ("labels", ".txt")):
                (root / kind / split).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), np.full((16, 16, 3), 10 * k + j, np.uint8))
            (root / "labels" / split / f"{stem}.txt").write_text(text)
    keys = {("val" if s == "valid" else s): f"images/{s}" for s in labels}
    (root / "data.yaml").write_text(yaml.safe_dump({**keys, "names": names}))
    return root / "data.yaml"


def two_sources(tmp_path: Path) -> tuple[Path, Path]:
    a = dataset(tmp_path / "lug", ["knife", "Cans"], {"train": {"t1": "1 .5 .5 .2 .2\n", "t2": ""},
                                                      "valid": {"v1": "0 .5 .5 .1 .1\n"}})
    b = dataset(tmp_path / "cargo", ["cans", "bags"], {"train": {"t1": "1 .4 .4 .2 .2\n0 .5 .5 .1 .1\n"},
                                                       "test": {"q": "1 .5 .5 .3 .3\n"}})
    return a, b


def test_merge_prints_the_plan_then_writes_without_asking_when_stdin_is_not_a_terminal(tmp_path):
    a, b = two_sources(tmp_path)
    r = cli("data", "merge", a, b, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "lug: 0 knife -> 0, 1 Cans -> 1" in r.stdout and "cargo: 0 cans -> 1, 1 bags -> 2" in r.stdout
    assert r.stdout.index("class map") < r.stdout.index("wrote")
    assert "5 images linked, 0 copied" in r.stdout
    data = yaml.safe_load((tmp_path / "out/data.yaml").read_text())
    assert data["names"] == ["knife", "Cans", "bags"]
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    assert (tmp_path / "out/labels/train/cargo_t1.txt").read_text() == "2 .4 .4 .2 .2\n1 .5 .5 .1 .1\n"


def test_merge_asks_on_a_terminal_and_writes_nothing_on_no(tmp_path):
    a, b = two_sources(tmp_path)
    leader, follower = pty.openpty()
    os.write(leader, b"n\n")
    r = cli("data", "merge", a, b, "--out", tmp_path / "out", stdin=follower)
    os.close(leader), os.close(follower)
    assert r.returncode == 1 and "nothing written" in r.stdout
    assert not (tmp_path / "out").exists()
    assert cli("data", "merge", a, b, "--out", tmp_path / "out", "--yes", stdin=None).returncode == 0


def assert_clean_failure(r: subprocess.CompletedProcess, message: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xray-exp: error: ") and message in lines[0], r.stderr


def test_merge_bad_inputs_fail_in_one_line_and_leave_sources_and_output_untouched(tmp_path):
    a, b = two_sources(tmp_path)
    cases = {
        "data.yaml not found": lambda: b.unlink(),
        "no class names": lambda: b.write_text("train: images/train\n"),
        "t1.txt:2: class id 2 >= nc 2": lambda: (tmp_path / "cargo/labels/train/t1.txt").write_text(
            "1 .4 .4 .2 .2\n2 .5 .5 .1 .1\n"),
    }
    for message, break_it in cases.items():
        original = b.read_text(), (tmp_path / "cargo/labels/train/t1.txt").read_text()
        break_it()
        before = tree_hashes(tmp_path)
        assert_clean_failure(cli("data", "merge", a, b, "--out", tmp_path / "out"), message)
        assert tree_hashes(tmp_path) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cargo", "lug"]  # no output, no temp folder
        b.write_text(original[0]), (tmp_path / "cargo/labels/train/t1.txt").write_text(original[1])


def test_merge_refuses_an_existing_output_without_force(tmp_path):
    a, b = two_sources(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out/x").write_text("keep")
    assert_clean_failure(cli("data", "merge", a, b, "--out", tmp_path / "out"), "already exists; pass --force")
    assert (tmp_path / "out/x").read_text() == "keep"
    assert cli("data", "merge", a, b, "--out", tmp_path / "out", "--force").returncode == 0
    assert not (tmp_path / "out/x").exists()


def test_convert_coco_and_unreadable_json(tmp_path):
    (tmp_path / "export/train").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "export/train/a.jpg"), np.zeros((20, 40, 3), np.uint8))
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 20}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 10]}],
            "categories": [{"id": 0, "name": "bags", "supercategory": "none"},
                           {"id": 1, "name": "knife", "supercategory": "bags"}]}
    (tmp_path / "export/train/_annotations.coco.json").write_text(json.dumps(coco))
    r = cli("data", "convert", tmp_path / "export", "--format", "coco", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "train: 1 images, 1 objects" in r.stdout and "dropped Roboflow placeholder" in r.stdout
    assert (tmp_path / "out/labels/train/a.txt").read_text() == "0 0.500000 0.500000 0.500000 0.500000\n"

    (tmp_path / "export/train/_annotations.coco.json").write_text("{oops")
    before = tree_hashes(tmp_path / "export")
    r = cli("data", "convert", tmp_path / "export", "--format", "coco", "--out", tmp_path / "out2")
    assert_clean_failure(r, "_annotations.coco.json: not readable JSON")
    assert not (tmp_path / "out2").exists() and tree_hashes(tmp_path / "export") == before


def test_audit_exit_codes_finding_lines_and_gallery(tmp_path):
    data = dataset(tmp_path / "ds", ["knife", "gun"], {"train": {"a": "0 .5 .5 .2 .2\n", "b": "1 .3 .3 .1 .1\n"},
                                                       "valid": {"c": "1 .5 .5 .4 .4\n"}})
    r = cli("data", "audit", data, "--gallery", tmp_path / "g.png", "-n", "3", "--strict")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 errors, 0 warnings" in r.stdout and cv2.imread(str(tmp_path / "g.png")).shape == (320, 640, 3)  # 2 train images

    (tmp_path / "ds/labels/train/b.txt").write_text("1 .3 .3 .1 .1\n1 .3 .3 .1 .1\n")  # duplicate row
    assert cli("data", "audit", data).returncode == 0
    r = cli("data", "audit", data, "--strict")
    assert r.returncode == 1 and f"{tmp_path}/ds/labels/train/b.txt:2: warning: duplicate row" in r.stdout

    (tmp_path / "ds/labels/train/a.txt").write_text("0 .5 .5 .2 .2\n5 .5 .5 .2 .2\n")
    r = cli("data", "audit", data)
    assert r.returncode == 2
    assert f"{tmp_path}/ds/labels/train/a.txt:2: error: class id 5 out of range 0..1" in r.stdout.splitlines()
