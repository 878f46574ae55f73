"""Conversion with known truth: boxes rendered at known pixels, exported as COCO and <loc> JSONL, converted
back to YOLO and matched to the rendered pixels within 1 px."""
import base64
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from helpers import H, W, boxes_from_pixels, loc_suffix, render_scene, tree_hashes
from xray_exp.data.convert import convert, parse_loc_objects
from xray_exp.data.yolo import label_lines, parse_line
from xray_exp.errors import XrayExpError

# Each image: (file name, [(class name, x1, y1, x2, y2)]) in pixel edges; fill covers x1..x2-1.
SCENES = {
    "train": [("bag_a.jpg", [("knife", 20, 10, 100, 50), ("Gun", 150, 90, 230, 150)]),
              ("bag_b.jpg", [("knife", 60, 100, 90, 155)]),
              ("bag_empty.jpg", [])],
    "valid": [("bag_c.jpg", [("Gun", 5, 30, 200, 60)])],
}



def yolo_boxes_px(label: Path, image: Path, names: list[str]) -> list[tuple[str, float, float, float, float]]:
    h, w = cv2.imdecode(np.frombuffer(image.read_bytes(), np.uint8), cv2.IMREAD_COLOR).shape[:2]
    out = []
    for i, text in label_lines(label):
        xc, yc, bw, bh = parse_line(text, i).box()
        out.append((names[parse_line(text, i).cls], (xc - bw / 2) * w, (yc - bh / 2) * h,
                    (xc + bw / 2) * w, (yc + bh / 2) * h))
    return out


def assert_matches_rendered(out: Path, src_images: Path, polygons: bool = False) -> None:
    data = yaml.safe_load((out / "data.yaml").read_text())
    for split, scenes in SCENES.items():
        key = "val" if split == "valid" else split
        for name, objects in scenes:
            label = out / "labels" / key / f"{Path(name).stem}.txt"
            got = yolo_boxes_px(label, out / "images" / key / name, data["names"])
            truth = boxes_from_pixels(src_images(split) / name, len(objects))
            assert [g[0] for g in got] == [o[0] for o in objects]
            for g, t in zip(got, truth):
                assert np.abs(np.array(g[1:]) - np.array(t)).max() <= 1.0, (name, g, t)


# ---- COCO -------------------------------------------------------------------------------------------

def coco_export(root: Path, polygons: bool = False) -> Path:
    """Roboflow-style COCO: a placeholder category 0 named after the dataset, 'scissors' never used."""
    cats = [{"id": 0, "name": "xray-bags", "supercategory": "none"},
            {"id": 1, "name": "Gun", "supercategory": "xray-bags"},
            {"id": 2, "name": "knife", "supercategory": "xray-bags"},
            {"id": 3, "name": "scissors", "supercategory": "xray-bags"}]
    cat_id = {c["name"]: c["id"] for c in cats}
    for split, scenes in SCENES.items():
        images, anns = [], []
        for img_id, (name, objects) in enumerate(scenes):
            render_scene(root / split / name, objects)
            images.append({"id": img_id, "file_name": name, "width": W, "height": H})
            for (cls, *_), (x1, y1, x2, y2) in zip(objects, boxes_from_pixels(root / split / name, len(objects))):
                poly = [[x1, y1, x2, y1, x2, y2, x1, y2]] if polygons else []
                anns.append({"id": len(anns), "image_id": img_id, "category_id": cat_id[cls],
                             "bbox": [int(x1), int(y1), int(x2 - x1), int(y2 - y1)],
                             "segmentation": [[float(v) for v in p] for p in poly], "area": 0, "iscrowd": 0})
        (root / split / "_annotations.coco.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def test_coco_boxes_match_rendered_pixels_and_placeholder_category_is_dropped(tmp_path):
    src = coco_export(tmp_path / "export")
    result = convert("coco", src, tmp_path / "out")
    assert result.names == ["Gun", "knife", "scissors"]
    assert any("placeholder category 0 'xray-bags'" in n for n in result.notes)
    assert result.images == {"train": 3, "val": 1} and result.objects == {"train": 3, "val": 1}
    assert_matches_rendered(tmp_path / "out", lambda s: src / s)
    assert (tmp_path / "out/labels/train/bag_empty.txt").read_text() == ""
    assert yaml.safe_load((tmp_path / "out/data.yaml").read_text())["nc"] == 3


def test_coco_polygons_become_yolo_polygon_rows(tmp_path):
    src = coco_export(tmp_path / "export", polygons=True)
    convert("coco", src, tmp_path / "out")
    rows = (tmp_path / "out/labels/train/bag_a.txt").read_text().splitlines()
    assert [len(r.split()) for r in rows] == [9, 9]
    first = parse_line(rows[0])
    assert first.cls == 1 and first.coords[:2] == pytest.approx((20 / W, 10 / H), abs=1e-6)
    assert_matches_rendered(tmp_path / "out", lambda s: src / s)


def test_coco_unreadable_json_fails_naming_the_file_and_leaves_nothing(tmp_path):
    src = coco_export(tmp_path / "export")
    (src / "valid/_annotations.coco.json").write_text('{"images": [')
    before = tree_hashes(src)
    with pytest.raises(XrayExpError, match=r"valid/_annotations\.coco\.json: not readable JSON"):
        convert("coco", src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and tree_hashes(src) == before
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


# ---- Roboflow <loc> JSONL ----------------------------------------------------------------------------

def jsonl_export(root: Path, flavour: str, images_dir: Path | None = None) -> Path:
    """Roboflow JSONL export; with images_dir the chat records name images by https URL instead."""
    root.mkdir(parents=True, exist_ok=True)
    for split, scenes in SCENES.items():
        lines = []
        for name, objects in scenes:
            img = (images_dir or root) / name
            render_scene(img, objects)
            prompt, answer = "detect Gun ; knife ; scissors", loc_suffix(img, objects)
            if flavour == "paligemma":
                lines.append({"image": name, "prefix": prompt, "suffix": answer})
            else:
                url = f"https://source.roboflow.com/abc/{name}" if images_dir else name
                lines.append({"messages": [
                    {"role": "system", "content": "You find objects in X-ray scans."},
                    {"role": "user", "content": [{"type": "text", "text": prompt},
                                                 {"type": "image_url", "image_url": {"url": url}}]},
                    {"role": "assistant", "content": answer}]})
        (root / f"_annotations.{split}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


@pytest.mark.parametrize("flavour", ["paligemma", "openai"])
def test_roboflow_jsonl_loc_boxes_match_rendered_pixels(tmp_path, flavour):
    src = jsonl_export(tmp_path / "export", flavour)
    result = convert("roboflow-jsonl", src, tmp_path / "out")
    assert result.names == ["Gun", "knife", "scissors"]  # from the prompt, sorted as Roboflow sorts
    assert result.images == {"train": 3, "val": 1}
    assert_matches_rendered(tmp_path / "out", lambda s: src)


def test_xy_swapped_per_mille_reading_of_loc_tokens_fails_the_1px_check(tmp_path):
    """The guide's suspected bug: reading <loc> as x_min, y_min, x_max, y_max per 1000 moves every box."""
    src = jsonl_export(tmp_path / "export", "paligemma")
    rec = json.loads((src / "_annotations.train.jsonl").read_text().splitlines()[0])
    truth = boxes_from_pixels(src / rec["image"], 2)
    locs = [[int(t) for t in re.findall(r"<loc(\d{4})>", obj)] for obj in rec["suffix"].split(";")]
    swapped = [(a / 1000 * W, b / 1000 * H, c / 1000 * W, d / 1000 * H) for a, b, c, d in locs]
    right = [(x1 * W, y1 * H, x2 * W, y2 * H) for _, x1, y1, x2, y2 in parse_loc_objects(rec["suffix"])]
    assert max(np.abs(np.array(right) - np.array(truth)).max(axis=1)) <= 1.0
    assert min(np.abs(np.array(swapped) - np.array(truth)).max(axis=1)) > 1.0  # every box is off


def test_remote_image_urls_are_found_by_name_in_images_dir(tmp_path):
    src = jsonl_export(tmp_path / "export", "openai", images_dir=tmp_path / "downloaded")
    convert("roboflow-jsonl", src, tmp_path / "out", images=tmp_path / "downloaded")
    assert_matches_rendered(tmp_path / "out", lambda s: tmp_path / "downloaded")


def test_missing_remote_image_is_an_error_naming_it(tmp_path):
    src = jsonl_export(tmp_path / "export", "openai", images_dir=tmp_path / "downloaded")
    (tmp_path / "downloaded/bag_c.jpg").unlink()
    with pytest.raises(XrayExpError, match=r"_annotations\.valid\.jsonl:1: image bag_c\.jpg not found"):
        convert("roboflow-jsonl", src, tmp_path / "out", images=tmp_path / "downloaded")
    with pytest.raises(XrayExpError, match=r"bag_a\.jpg is a remote URL; pass --images"):
        convert("roboflow-jsonl", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_embedded_data_uri_images_are_written_out(tmp_path):
    render_scene(tmp_path / "img.png", [("knife", 20, 10, 100, 50)])
    uri = "data:image/png;base64," + base64.b64encode((tmp_path / "img.png").read_bytes()).decode()
    rec = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}}]},
                        {"role": "assistant", "content": [{"type": "text",
                                                           "text": loc_suffix(tmp_path / "img.png",
                                                                              [("knife",)])}]}]}
    (tmp_path / "export").mkdir()
    (tmp_path / "export/data_train.jsonl").write_text(json.dumps(rec) + "\n")
    convert("roboflow-jsonl", tmp_path / "export", tmp_path / "out")
    out_img = tmp_path / "out/images/train/train_000001.png"
    assert out_img.read_bytes() == (tmp_path / "img.png").read_bytes()
    (_, x1, y1, x2, y2), = yolo_boxes_px(tmp_path / "out/labels/train/train_000001.txt", out_img, ["knife"])
    assert np.abs(np.array([x1, y1, x2, y2]) - np.array([20, 10, 100, 50])).max() <= 1.0


@pytest.mark.parametrize("suffix, message", [
    ("<loc0100><loc0200> knife", "not '<loc><loc><loc><loc> name'"),
    ("<loc0500><loc0200><loc0100><loc0300> knife", "min <= max"),
    ("<loc0100><loc0200><loc0300><loc1024> knife", "0..1023"),
])
def test_malformed_loc_answers_are_errors_with_file_and_line(tmp_path, suffix, message):
    render_scene(tmp_path / "export/a.jpg", [])
    (tmp_path / "export/x.test.jsonl").write_text(json.dumps({"image": "a.jpg", "prefix": "", "suffix": ""})
                                                  + "\n" + json.dumps({"image": "a.jpg", "prefix": "",
                                                                       "suffix": suffix}) + "\n")
    with pytest.raises(XrayExpError, match=rf"x\.test\.jsonl:2: .*{message.replace('.', '[.]')}"):
        convert("roboflow-jsonl", tmp_path / "export", tmp_path / "out")


def test_paligemma_segmentation_tokens_after_a_box_are_ignored():
    objs = parse_loc_objects("<loc0000><loc0512><loc1023><loc1023>" + "<seg001>" * 16 + " knife ; ")
    assert objs == [("knife", 0.5, 0.0, 1023 / 1024, 1023 / 1024)]


def test_jsonl_class_order_is_roboflows_case_insensitive_sort_which_gives_the_luggage_list(tmp_path):
    luggage = ["blade", "Cans", "CartonDrinks", "dagger", "GlassBottle", "knife", "PlasticBottle", "scissors",
               "SprayCans", "SwissArmyKnife", "Tin", "VacuumCup"]
    render_scene(tmp_path / "export/a.jpg", [])
    prompt = "detect " + " ; ".join(reversed(luggage))
    (tmp_path / "export/_annotations.train.jsonl").write_text(
        json.dumps({"image": "a.jpg", "prefix": prompt, "suffix": "<loc0000><loc0000><loc0512><loc0512> Tin"}))
    result = convert("roboflow-jsonl", tmp_path / "export", tmp_path / "out")
    assert result.names == luggage
    assert (tmp_path / "out/labels/train/a.txt").read_text() == "10 0.250000 0.250000 0.500000 0.500000\n"
