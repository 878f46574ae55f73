"""Synthetic X-ray baggage scans with exact YOLO labels, composed from the physics of transmission.

An image is what a dual-energy line scanner records through a bag. Every material has a linear
attenuation coefficient at a low and a high photon energy; along one ray the transmissions multiply
(Beer–Lambert: T = exp(-Σ μ·t)), so a scene is a sum of μ·t layers ("attenuation maps", shape
(H, W, 2): low, high). The scanner renders the pair in false colour: hue from the low/high
attenuation ratio (it grows with atomic number: orange organic, green mixed, blue metal), brightness
from the total attenuation, air white. The detector blurs a little and adds photon noise.

The pieces are plain functions so the physics can be tested apart from the picture: `attenuation`,
`compose`, `false_colour`, `detector`, `render_threat`, `render`. `generate_image` samples one scene
(bag, clutter, 0–3 threats) from an rng; `build_dataset` / `ensure_dataset` write a YOLO dataset.
The images are synthetic, and data.yaml says so.
"""
from __future__ import annotations

import errno
import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import yaml

from xray_exp.files import building_dir, write_text
from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)

# Threat classes, spelled as in luggage_xray where the two overlap so models and configs transfer.
CLASS_NAMES: list[str] = ["knife", "dagger", "blade", "scissors", "SprayCans", "gun"]

GENERATOR_VERSION = 1  # bump when the pictures change, so ensure_dataset refuses a stale build
SPLITS = ("train", "val", "test")
MIN_IMGSZ, MAX_IMGSZ = 32, 4096
MIN_VISIBLE = 0.3  # an object more than 70 % outside the image gets no label
FOOTPRINT_SUPERSAMPLE = 4  # threats are rasterised at 4x: partial-pixel coverage and labels to 1/4 px
# JPEG at quality 95: real X-ray datasets ship as JPEG, it encodes ~4x faster than PNG and the
# photon noise makes PNGs ~3x larger; at q95 the artefacts sit well below the detector noise.
IMAGE_EXT = ".jpg"
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Material:
    """Linear attenuation coefficients (1/mm) at the scanner's low (~50 keV) and high (~100 keV) energy.

    Values are the NIST XCOM mass attenuation at those energies times density, rounded; what matters
    for the picture is their ratio, which grows with atomic number.
    """
    name: str
    mu_low: float
    mu_high: float


ORGANIC = Material("organic", 0.023, 0.017)      # water, clothes, plastics, wood: ratio 1.35
ALUMINIUM = Material("aluminium", 0.099, 0.046)  # cans, laptop shells: ratio 2.15 (mixed)
GLASS = Material("glass", 0.085, 0.042)          # ratio 2.0 (mixed)
STEEL = Material("steel", 1.50, 0.29)            # ratio 5.2 (metal)
COPPER = Material("copper", 2.30, 0.41)          # cable cores, electronics: ratio 5.6 (metal)

# False-colour rendering: hue follows the low/high ratio through these anchors (degrees, OpenCV's
# float HSV uses 0–360); brightness = exp(-BRIGHTNESS * (w·A_low + (1-w)·A_high)).
HUE_RATIO = (1.5, 2.2, 3.5)
HUE_DEG = (30.0, 120.0, 220.0)  # orange organic, green mixed, blue metal
LOW_WEIGHT = 0.25
BRIGHTNESS = 0.8
SATURATION, SATURATION_RISE = 0.9, 3.5
NOISE = 0.012  # photon noise: std of the transmission is NOISE·sqrt(T)
T_FLOOR = 1e-4  # detector dynamic range: nothing transmits less than this


# ---------------------------------------------------------------- physics
def attenuation(thickness: np.ndarray, material: Material) -> np.ndarray:
    """μ·t at both energies for a thickness map (mm): shape (..., 2), float32."""
    t = np.asarray(thickness, np.float32)[..., None]
    return t * np.array([material.mu_low, material.mu_high], np.float32)


def transmission(att: np.ndarray) -> np.ndarray:
    """Fraction of photons that get through: T = exp(-Σ μ·t), per energy."""
    return np.exp(-att)


def _accumulate(att: np.ndarray, layer: np.ndarray, x0: int, y0: int) -> None:
    """Add a local attenuation layer into att at column x0, row y0, in place, clipped to att."""
    h, w = att.shape[:2]
    lh, lw = layer.shape[:2]
    ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + lw, w), min(y0 + lh, h)
    if ax0 < ax1 and ay0 < ay1:
        att[ay0:ay1, ax0:ax1] += layer[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0]


def compose(base: np.ndarray, layer: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Put a layer (its top-left at origin = (x, y)) in the beam path over base; returns a new map.

    Attenuations add, i.e. transmissions multiply: an object can only take photons away.
    """
    out = np.array(base, np.float32, copy=True)
    _accumulate(out, np.asarray(layer, np.float32), *origin)
    return out


def false_colour(att: np.ndarray) -> np.ndarray:
    """Render an attenuation map (H, W, 2) as the scanner's dual-energy false colour, BGR float in [0, 1].

    The HSV value (max of B, G, R) falls strictly with attenuation at either energy, so adding
    material never brightens a pixel; the hue depends only on the low/high ratio.
    """
    a_low = np.maximum(att[..., 0], 0)
    a_high = np.maximum(att[..., 1], 0)
    eps = np.float32(1e-3)  # where nothing attenuates the ratio is 0/0: call it organic (saturation is 0 there)
    ratio = (a_low + eps * np.float32(ORGANIC.mu_low / ORGANIC.mu_high)) / (a_high + eps)
    hsv = np.empty(att.shape[:-1] + (3,), np.float32)
    (r0, r1, r2), (h0, h1, h2) = HUE_RATIO, HUE_DEG
    # piecewise-linear hue through the anchors (np.interp, but float32 and ~3x faster)
    hsv[..., 0] = (h0 + (h1 - h0) * np.clip((ratio - r0) / (r1 - r0), 0, 1)
                   + (h2 - h1) * np.clip((ratio - r1) / (r2 - r1), 0, 1))
    total = np.float32(LOW_WEIGHT) * a_low + np.float32(1 - LOW_WEIGHT) * a_high
    hsv[..., 1] = np.float32(SATURATION) * (1 - np.exp(-np.float32(SATURATION_RISE) * total))
    hsv[..., 2] = np.exp(-np.float32(BRIGHTNESS) * total)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def detector(att: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the detector measures: the transmission blurred by its point spread, plus photon noise.

    Returns the measured attenuation map; the noise is larger where fewer photons arrive.
    """
    t = transmission(att)
    sigma = max(0.5, min(att.shape[:2]) / 900)  # ~0.7 px at 640: the scanner's point spread, not a visible blur
    t = cv2.GaussianBlur(t, (0, 0), sigma)
    # Zero-mean, unit-variance bell-shaped noise from two uniforms: twice as fast as standard_normal
    # (the single largest cost of an image) and indistinguishable after 8-bit quantisation.
    u = rng.random((2, *t.shape), dtype=np.float32)
    t += np.float32(NOISE * np.sqrt(6)) * np.sqrt(t) * (u[0] + u[1] - 1)
    return -np.log(np.clip(t, T_FLOOR, 1.0))


def to_uint8(bgr: np.ndarray) -> np.ndarray:
    return np.clip(bgr * 255 + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- shapes
def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def _round_rect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 6) -> np.ndarray:
    """Rectangle with rounded corners of radius r (clamped to half the shorter side)."""
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    pts = []
    for cx, cy, a0 in ((x1 - r, y0 + r, -90), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        a = np.radians(a0 + np.linspace(0, 90, n))
        pts.append(np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1))
    return np.concatenate(pts)


@dataclass(frozen=True)
class Part:
    """One piece of an object: contours (drawn even-odd, so a second contour cuts a hole), its
    material, thickness (mm) and thickness profile across the piece."""
    contours: tuple[np.ndarray, ...]
    material: Material
    thickness: float
    profile: str = "flat"  # flat | cylinder (solid round body) | shell (hollow can: darker rim)


def _knife(v: int) -> list[Part]:
    blade = np.array([[-0.08, -0.075], [0.30, -0.075], [0.50, -0.045], [0.42, 0.0], [0.22, 0.06], [-0.08, 0.07]])
    handle = _round_rect(-0.50, -0.065, -0.06, 0.075, 0.03)
    handle_mat = STEEL if v % 3 == 2 else ORGANIC  # most kitchen knives: wood/plastic handle
    parts = [Part((blade,), STEEL, 2.2),
             Part((_rect(-0.46, -0.02, -0.06, 0.03),), STEEL, 1.5),  # tang inside the handle
             Part((handle,), handle_mat, 16.0 if handle_mat is ORGANIC else 2.0, "cylinder")]
    parts += [Part((_ellipse(x, 0.005, 0.014, 0.014, 12),), STEEL, 3.0) for x in (-0.4, -0.2)]  # rivets
    return parts


def _dagger(v: int) -> list[Part]:
    blade = np.array([[-0.10, -0.075], [0.28, -0.06], [0.50, 0.0], [0.28, 0.06], [-0.10, 0.075]])
    ridge = np.array([[-0.10, -0.012], [0.40, 0.0], [-0.10, 0.012]])
    grip_mat = ORGANIC if v % 2 else STEEL
    return [Part((blade,), STEEL, 2.0), Part((ridge,), STEEL, 2.0),
            Part((_round_rect(-0.16, -0.19, -0.10, 0.19, 0.02),), STEEL, 5.0),  # cross-guard
            Part((_round_rect(-0.43, -0.045, -0.15, 0.045, 0.02),), grip_mat,
                 14.0 if grip_mat is ORGANIC else 2.5, "cylinder"),
            Part((_rect(-0.43, -0.015, -0.15, 0.015),), STEEL, 2.0),  # tang
            Part((_ellipse(-0.455, 0.0, 0.05, 0.05, 16),), STEEL, 6.0, "cylinder")]  # pommel


def _blade(v: int) -> list[Part]:
    outline = np.array([[-0.5, -0.24], [-0.14, -0.24], [-0.1, -0.17], [0.1, -0.17], [0.14, -0.24],
                        [0.5, -0.24], [0.28, 0.24], [-0.28, 0.24]])  # utility-knife blade with notches
    slot = _round_rect(-0.16, -0.04, 0.16, 0.06, 0.05)
    return [Part((outline, slot), STEEL, 1.6)]


def _scissors(v: int) -> list[Part]:
    spread = np.radians(7 + 6 * (v % 3))
    parts = []
    ring_mat = ORGANIC if v % 2 == 0 else STEEL
    for side in (-1, 1):
        c, s = np.cos(side * spread), np.sin(side * spread)
        blade = np.array([[0.0, -0.035], [0.48, -0.01], [0.5, 0.0], [0.48, 0.015], [0.0, 0.04]])
        shank = np.array([[-0.05, -0.02], [0.06, -0.02], [0.06, 0.02], [-0.05, 0.02]])
        rot = np.array([[c, -s], [s, c]])
        parts.append(Part(((blade - [0.06, 0]) @ rot.T + [0.06, 0],), STEEL, 2.0))
        parts.append(Part(((shank - [0.06, 0]) @ rot.T + [0.06, 0],), STEEL, 3.0))
        ring = (_ellipse(-0.30, side * 0.13, 0.2, 0.11), _ellipse(-0.30, side * 0.13, 0.15, 0.07))
        arm = np.array([[-0.12, side * 0.06], [0.02, -side * 0.0], [0.02, side * 0.03], [-0.12, side * 0.11]])
        thick = 9.0 if ring_mat is ORGANIC else 2.0
        parts += [Part(ring, ring_mat, thick), Part((arm,), ring_mat, thick)]
    parts.append(Part((_ellipse(0.06, 0.0, 0.022, 0.022, 12),), STEEL, 6.0))  # pivot screw
    return parts


def _spray_can(v: int) -> list[Part]:
    shell = ALUMINIUM if v % 2 else STEEL  # aluminium or tin-plated steel body
    wall = 3.0 if shell is ALUMINIUM else 0.5  # mm seen face-on; the rim is darker through the profile
    body = _round_rect(-0.50, -0.17, 0.30, 0.17, 0.03)
    shoulder = np.array([[0.28, -0.17], [0.30, -0.17], [0.38, -0.09], [0.38, 0.09], [0.30, 0.17], [0.28, 0.17]])
    return [Part((body,), shell, wall, "shell"), Part((shoulder,), shell, wall * 1.5),
            Part((_round_rect(-0.47, -0.15, 0.27, 0.15, 0.02),), ORGANIC, 45.0, "cylinder"),  # liquid
            Part((_rect(-0.46, -0.008, 0.40, 0.008),), ORGANIC, 4.0),  # dip tube
            Part((_rect(0.37, -0.06, 0.42, 0.06),), STEEL, 2.0),  # valve cup
            Part((_round_rect(0.41, -0.07, 0.50, 0.07, 0.02),), ORGANIC, 18.0)]  # actuator cap


def _gun(v: int) -> list[Part]:
    slide = _round_rect(-0.50, -0.22, 0.50, -0.03, 0.02)
    frame = np.array([[-0.2, -0.04], [0.45, -0.04], [0.45, 0.04], [0.05, 0.04], [-0.2, 0.06]])
    grip = np.array([[-0.47, -0.05], [-0.18, -0.05], [-0.22, 0.50], [-0.50, 0.48]])
    guard = (_round_rect(-0.17, -0.02, 0.10, 0.22, 0.08), _round_rect(-0.12, 0.02, 0.05, 0.17, 0.06))
    trigger = np.array([[-0.05, 0.03], [-0.02, 0.03], [-0.05, 0.14], [-0.07, 0.13]])
    magazine = np.array([[-0.42, -0.03], [-0.25, -0.03], [-0.29, 0.47], [-0.45, 0.46]])
    polymer = v % 2 == 0  # polymer frame (orange grip around a dark magazine) or all-steel
    return [Part((slide,), STEEL, 7.0, "cylinder"), Part((_rect(0.0, -0.17, 0.5, -0.08),), STEEL, 4.0),  # barrel
            Part((frame,), ORGANIC if polymer else STEEL, 20.0 if polymer else 4.0),
            Part((grip,), ORGANIC if polymer else STEEL, 28.0 if polymer else 3.0, "cylinder"),
            Part(guard, ORGANIC if polymer else STEEL, 10.0 if polymer else 2.5),
            Part((trigger,), STEEL, 2.5), Part((magazine,), STEEL, 3.0)]


SHAPES = {"knife": _knife, "dagger": _dagger, "blade": _blade, "scissors": _scissors,
          "SprayCans": _spray_can, "gun": _gun}
# Object length as a fraction of the image side. Real blades are small; these are drawn larger so a
# small detector at low resolution can learn them (the data teaches the pipeline, not the scanner).
LENGTH_RANGE = {"knife": (0.28, 0.45), "dagger": (0.28, 0.45), "blade": (0.15, 0.25),
                "scissors": (0.22, 0.38), "SprayCans": (0.22, 0.38), "gun": (0.22, 0.38)}
N_VARIANTS = 6


@dataclass(frozen=True)
class Threat:
    """A labelled object: class id, centre (px), length (px), rotation (degrees, counter-clockwise
    on screen), mirrored across its length axis or not, thickness multiplier, design variant."""
    cls: int
    cx: float
    cy: float
    length: float
    angle: float = 0.0
    mirror: bool = False
    thickness: float = 1.0
    variant: int = 0


@dataclass(frozen=True)
class Layer:
    """An object's attenuation in a local window whose top-left pixel is (x0, y0) in the image."""
    att: np.ndarray  # (h, w, 2)
    footprint: np.ndarray  # (h·ss, w·ss) bool: the object's mask at ss times the image resolution
    x0: int
    y0: int
    ss: int


def _thickness_profile(cover: np.ndarray, profile: str) -> np.ndarray:
    """Relative path length across a piece: 1 for a flat plate; a round body is thickest on its axis;
    a hollow can is thickest at its rim (the beam runs along the wall there)."""
    if profile == "flat":
        return cover
    dist = cv2.distanceTransform((cover > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    radius = max(float(dist.max()), 1.0)
    u = np.clip(1 - dist / radius, 0, 1)
    if profile == "cylinder":
        return cover * np.sqrt(1 - u * u) * 1.27  # ×1.27: mean of the profile ≈ the nominal thickness
    return cover * (1 + 3 * np.exp(-(1 - u) * 12))  # shell


def _draw_parts(parts: Sequence[Part], to_px, x0: int, y0: int, w: int, h: int,
                supersample: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise parts into a local (h, w) window whose top-left pixel is (x0, y0).

    Returns the attenuation (h, w, 2) and the union of the parts' masks at `supersample` times the
    resolution. Each pixel gets the covered fraction of its area (a detector pixel integrates over
    its area), and the fine mask gives labels to a fraction of a pixel.
    """
    ss = supersample
    att = np.zeros((h, w, 2), np.float32)
    union = np.zeros((h * ss, w * ss), bool)
    for part in parts:
        mask = np.zeros((h * ss, w * ss), np.uint8)
        # Pixel i spans [i, i+1) in label coordinates but OpenCV puts its centre at i: shift by half a
        # (fine) pixel; 4 fractional bits keep sub-pixel positions.
        contours = [np.round(((to_px(c) - [x0, y0]) * ss - 0.5) * 16).astype(np.int32) for c in part.contours]
        cv2.fillPoly(mask, contours, 255, cv2.LINE_8, 4)
        union |= mask > 0
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)  # exact area mean for a whole factor
        cover = mask.astype(np.float32) / 255
        att += attenuation(part.thickness * _thickness_profile(cover, part.profile), part.material)
    return att, union


def render_threat(threat: Threat) -> Layer:
    """Rasterise a threat at its pose. Its footprint is what the label box is computed from."""
    parts = SHAPES[CLASS_NAMES[threat.cls]](threat.variant)
    a = np.radians(threat.angle)
    # Image rows grow downwards, so a counter-clockwise turn on screen is a clockwise one in (x, y).
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) * threat.length
    flip = np.array([1.0, -1.0 if threat.mirror else 1.0])

    def to_px(pts: np.ndarray) -> np.ndarray:
        return (pts * flip) @ rot.T + [threat.cx, threat.cy]

    allpts = np.concatenate([to_px(c) for p in parts for c in p.contours])
    x0, y0 = (np.floor(allpts.min(0)) - 2).astype(int)
    x1, y1 = (np.ceil(allpts.max(0)) + 2).astype(int)
    att, footprint = _draw_parts([Part(p.contours, p.material, p.thickness * threat.thickness, p.profile)
                                  for p in parts], to_px, x0, y0, x1 - x0, y1 - y0, FOOTPRINT_SUPERSAMPLE)
    return Layer(att, footprint, int(x0), int(y0), FOOTPRINT_SUPERSAMPLE)


def label_for(layer: Layer, cls: int, imgsz: int | Sequence[int]) -> tuple[int, float, float, float, float] | None:
    """YOLO label (cls, xc, yc, w, h) of the footprint's part inside the image, or None when more
    than 70 % of it lies outside."""
    width, height = image_size(imgsz)
    ss = layer.ss
    fx0, fy0 = layer.x0 * ss, layer.y0 * ss  # the footprint's top-left, in fine pixels of the image
    ix0, iy0 = max(0, -fx0), max(0, -fy0)  # the part of the footprint inside the image
    ix1, iy1 = min(layer.footprint.shape[1], width * ss - fx0), min(layer.footprint.shape[0], height * ss - fy0)
    inside = layer.footprint[iy0:max(iy0, iy1), ix0:max(ix0, ix1)]
    total = np.count_nonzero(layer.footprint)
    if total == 0 or np.count_nonzero(inside) < MIN_VISIBLE * total:
        return None
    cols, rows = np.flatnonzero(inside.any(axis=0)), np.flatnonzero(inside.any(axis=1))
    x1, x2 = (fx0 + ix0 + cols[0]) / ss, (fx0 + ix0 + cols[-1] + 1) / ss  # fine-pixel edges
    y1, y2 = (fy0 + iy0 + rows[0]) / ss, (fy0 + iy0 + rows[-1] + 1) / ss
    return (cls, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)


def render(threats: Sequence[Threat], imgsz: int | Sequence[int], background: np.ndarray | None = None,
           rng: np.random.Generator | None = None) -> tuple[np.ndarray, list[tuple]]:
    """Compose threats over a background attenuation map and render it.

    Returns the BGR uint8 image and its YOLO labels. Without rng the detector is ideal (no blur, no
    noise), which is what tests use to compare pixels with labels.
    """
    width, height = image_size(imgsz)
    att = np.zeros((height, width, 2), np.float32) if background is None else background.copy()
    labels = []
    for threat in threats:
        layer = render_threat(threat)
        _accumulate(att, layer.att, layer.x0, layer.y0)
        label = label_for(layer, threat.cls, imgsz)
        if label is not None:
            labels.append(label)
    measured = att if rng is None else detector(att, rng)
    return to_uint8(false_colour(measured)), labels


# ---------------------------------------------------------------- scene sampling
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    """Low-frequency texture in [0, 1): a few random cells resized up (folds of cloth, uneven filling)."""
    small = rng.random((cells, cells), dtype=np.float32)
    # Cubic up to at most 32 px, then linear: as smooth as one cubic resize and ~10x faster at 640 px.
    mid = cv2.resize(small, (min(w, 32) or 1, min(h, 32) or 1), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(mid, (max(w, 1), max(h, 1)), interpolation=cv2.INTER_LINEAR).clip(0, 1)


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """A random smooth closed outline (a few harmonics on a circle): a folded garment, a bag of stuff."""
    a = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    rad = np.ones_like(a)
    for k in (2, 3, 4):
        rad += rng.uniform(0, 0.25 / k * 2) * np.cos(k * a + rng.uniform(0, 2 * np.pi))
    sx, sy = rng.uniform(0.6, 1.0, 2)
    return np.stack([cx + r * sx * rad * np.cos(a), cy + r * sy * rad * np.sin(a)], 1)


def _stamp(att: np.ndarray, contours: Sequence[np.ndarray], material: Material, thickness: float,
           profile: str = "flat", texture: tuple[np.random.Generator, float, float, int] | None = None) -> None:
    """Draw one clutter piece (image-pixel contours) into att in place.

    Clutter has no labels, so it is drawn once per pixel with OpenCV's anti-aliased edges (cheaper
    than the threats' supersampling). texture = (rng, base, span, cells) multiplies the thickness by
    base + span·(smooth noise).
    """
    allpts = np.concatenate(contours)
    x0, y0 = (np.floor(allpts.min(0)) - 1).astype(int)
    x1, y1 = (np.ceil(allpts.max(0)) + 1).astype(int)
    h, w = att.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((c - [x0 + 0.5, y0 + 0.5]) * 16).astype(np.int32) for c in contours],
                 255, cv2.LINE_AA, 4)
    thick = _thickness_profile(mask.astype(np.float32) * np.float32(1 / 255), profile) * np.float32(thickness)
    if texture is not None:
        rng, base, span, cells = texture
        thick *= base + span * _smooth_noise(rng, y1 - y0, x1 - x0, cells)
    roi = att[y0:y1, x0:x1]  # a view: adding per energy avoids an (h, w, 2) temporary
    roi[..., 0] += thick * np.float32(material.mu_low)
    roi[..., 1] += thick * np.float32(material.mu_high)


def _add_sparse(att: np.ndarray, mask: np.ndarray, thickness: float, material: Material) -> None:
    """Add a thin full-image drawing (mask 0–255) in place, touching only its pixels."""
    pts = cv2.findNonZero(mask)  # ~8x faster than np.nonzero on a mostly empty image
    if pts is not None:
        xs, ys = pts.reshape(-1, 2).T
        att[ys, xs] += attenuation(mask[ys, xs] * np.float32(thickness / 255), material)


def _cable(rng: np.random.Generator, att: np.ndarray, n: int) -> None:
    """A cable: a wandering polyline, plastic insulation around a copper core (n: the shorter side)."""
    wh = np.array(att.shape[1::-1], float)
    steps = rng.integers(8, 16)
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, steps))
    seg = n * rng.uniform(0.03, 0.06)
    pts = rng.uniform(0.15, 0.85, 2) * wh + np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * seg, 0)
    width = max(2, round(n * rng.uniform(0.008, 0.015)))
    mask = np.zeros(att.shape[:2], np.uint8)
    poly = [np.round((pts - 0.5) * 16).astype(np.int32)]
    cv2.polylines(mask, poly, False, 255, width, cv2.LINE_AA, 4)
    core = np.zeros_like(mask)
    cv2.polylines(core, poly, False, 255, max(1, width // 3), cv2.LINE_AA, 4)
    _add_sparse(att, mask, 6.0, ORGANIC)
    _add_sparse(att, core, 0.6, COPPER)


def _bag(rng: np.random.Generator, imgsz: int | Sequence[int]) -> np.ndarray:
    """Background: a bag (fabric, piping, trolley rails) and clutter, as an attenuation map.

    Positions scale with the width and height, sizes with the shorter side (n), so a square scan is
    drawn exactly as before non-square ones existed.
    """
    width, height = image_size(imgsz)
    n, wh = min(width, height), np.array([width, height], float)
    att = np.zeros((height, width, 2), np.float32)
    m0, m1 = rng.uniform(0.0, 0.08, 2) * wh, wh - rng.uniform(0.0, 0.08, 2) * wh
    outline = _round_rect(m0[0], m0[1], m1[0], m1[1], n * 0.06)
    _stamp(att, [outline], ORGANIC, rng.uniform(3, 6), texture=(rng, 0.7, 0.6, 4))
    piping = np.zeros((height, width), np.uint8)
    cv2.polylines(piping, [np.round((outline - 0.5) * 16).astype(np.int32)], True, 255,
                  max(1, n // 200), cv2.LINE_AA, 4)
    _add_sparse(att, piping, 0.8, STEEL)
    if rng.random() < 0.6:  # trolley: two aluminium tubes along one side
        vertical = rng.random() < 0.5
        for off in (0.2, 0.8):
            c = m0 + (m1 - m0) * off
            tube = (_rect(c[0] - n * 0.012, m0[1], c[0] + n * 0.012, m1[1]) if vertical
                    else _rect(m0[0], c[1] - n * 0.012, m1[0], c[1] + n * 0.012))
            _stamp(att, [tube], ALUMINIUM, 14.0, "shell")
    for _ in range(rng.integers(2, 6)):  # clothes
        c = rng.uniform(0.15, 0.85, 2) * wh
        r = n * rng.uniform(0.12, 0.3)
        _stamp(att, [_blob(rng, c[0], c[1], r)], ORGANIC, rng.uniform(8, 30),
               texture=(rng, 0.4, 1.2, 6))
    for _ in range(rng.integers(0, 3)):  # cables
        _cable(rng, att, n)
    for _ in range(rng.integers(0, 3)):  # plastic bottles of liquid: organic, unlike the metal spray cans
        c, L, a = rng.uniform(0.2, 0.8, 2) * wh, n * rng.uniform(0.2, 0.35), rng.uniform(0, np.pi)
        body = _round_rect(-0.5, -0.16, 0.25, 0.16, 0.08)
        neck = _round_rect(0.2, -0.07, 0.5, 0.07, 0.02)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * L
        mat = GLASS if rng.random() < 0.25 else ORGANIC
        _stamp(att, [body @ rot.T + c], ORGANIC, 60.0, "cylinder")
        _stamp(att, [neck @ rot.T + c], mat, 12.0 if mat is ORGANIC else 3.0, "shell")
    for _ in range(rng.integers(0, 3)):  # electronics: a shell with boards and battery cells inside
        c, a = rng.uniform(0.2, 0.8, 2) * wh, rng.uniform(0, np.pi)
        sx, sy = n * rng.uniform(0.1, 0.28), n * rng.uniform(0.06, 0.16)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        _stamp(att, [_round_rect(-sx, -sy, sx, sy, n * 0.01) @ rot.T + c],
               ALUMINIUM if rng.random() < 0.5 else ORGANIC, 6.0)
        for _ in range(rng.integers(1, 4)):
            px, py = rng.uniform(-0.7, 0.5) * sx, rng.uniform(-0.7, 0.5) * sy
            qx, qy = px + rng.uniform(0.15, 0.5) * sx, py + rng.uniform(0.2, 0.5) * sy
            _stamp(att, [_rect(px, py, qx, qy) @ rot.T + c], COPPER if rng.random() < 0.3 else GLASS,
                   rng.uniform(0.3, 2.5))
    for _ in range(rng.integers(0, 4)):  # coins, zip pulls, buckles: small metal
        c = rng.uniform(0.1, 0.9, 2) * wh
        r = n * rng.uniform(0.01, 0.025)
        _stamp(att, [_ellipse(c[0], c[1], r, r * rng.uniform(0.5, 1.0), 16)], STEEL, rng.uniform(1, 2))
    return att


def sample_threats(rng: np.random.Generator, imgsz: int | Sequence[int]) -> list[Threat]:
    """0–3 threats at random class, place, size, rotation, mirror and thickness; ~15 % of scans have none.

    Lengths are fractions of the shorter side, positions of the width and height."""
    width, height = image_size(imgsz)
    if rng.random() < 0.15:
        return []
    threats = []
    for _ in range(1 + rng.binomial(2, 0.35)):
        cls = int(rng.integers(len(CLASS_NAMES)))
        lo, hi = LENGTH_RANGE[CLASS_NAMES[cls]]
        threats.append(Threat(cls, cx=float(rng.uniform(0.1, 0.9) * width), cy=float(rng.uniform(0.1, 0.9) * height),
                              length=float(rng.uniform(lo, hi) * min(width, height)), angle=float(rng.uniform(0, 360)),
                              mirror=bool(rng.random() < 0.5), thickness=float(rng.uniform(0.8, 1.4)),
                              variant=int(rng.integers(N_VARIANTS))))
    return threats


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The rng of one image: a function of (seed, split, index) only, so any worker count gives the same data."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def generate_image(seed: int, split: str, index: int, imgsz: int | Sequence[int]) -> tuple[np.ndarray, list[tuple]]:
    """One synthetic scan (BGR uint8) and its YOLO labels; imgsz is a square's side or (width, height)."""
    rng = image_rng(seed, split, index)
    background = _bag(rng, imgsz)
    return render(sample_threats(rng, imgsz), imgsz, background, rng)


# ---------------------------------------------------------------- dataset
def image_size(imgsz: int | Sequence[int]) -> tuple[int, int]:
    """(width, height) of a size given as a square's side or as (width, height)."""
    if isinstance(imgsz, (int, np.integer)):
        return int(imgsz), int(imgsz)
    width, height = imgsz
    return int(width), int(height)


def _params(n_train: int, n_val: int, n_test: int, imgsz: int | Sequence[int], seed: int) -> dict:
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not isinstance(n, int) or n < 0:
            raise XrayExpError(f"{name} must be a whole number >= 0, got {n!r}")
    sides = [imgsz] if isinstance(imgsz, int) else list(imgsz) if isinstance(imgsz, (list, tuple)) else [None]
    if len(sides) not in (1, 2) or not all(isinstance(s, int) and MIN_IMGSZ <= s <= MAX_IMGSZ for s in sides):
        raise XrayExpError(f"imgsz must be a whole number of pixels from {MIN_IMGSZ} to {MAX_IMGSZ} (or a "
                           f"[width, height] pair of them), got {imgsz!r}")
    # A square stays one number, so data.yaml and the check in ensure_dataset read as before.
    imgsz = sides[0] if len(set(sides)) == 1 else sides
    if not isinstance(seed, int):
        raise XrayExpError(f"seed must be a whole number, got {seed!r}")
    return {"generator": "xray_exp.data.synthetic", "version": GENERATOR_VERSION,
            "n_train": n_train, "n_val": n_val, "n_test": n_test, "imgsz": imgsz, "seed": seed}


def _write_image(job: tuple[str, str, int, int, int]) -> int:
    """Generate and write one image and its label file; returns the number of labels."""
    root, split, index, seed, imgsz = job
    image, labels = generate_image(seed, split, index, imgsz)
    ok, jpg = cv2.imencode(IMAGE_EXT, image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    stem = f"{split}_{index:06d}"
    (Path(root) / "images" / split / f"{stem}{IMAGE_EXT}").write_bytes(jpg.tobytes())
    (Path(root) / "labels" / split / f"{stem}.txt").write_text(
        "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels))
    return len(labels)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend


def _generate_into(root: Path, params: dict) -> int:
    """Write every split's images and labels into root (a fresh temp folder); returns the label count."""
    jobs = []
    for split in SPLITS:
        n = params[f"n_{split}"]
        if split != "test" or n:
            (root / "images" / split).mkdir(parents=True)
            (root / "labels" / split).mkdir(parents=True)
        jobs += [(str(root), split, i, params["seed"], params["imgsz"]) for i in range(n)]
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or len(jobs) < 200:  # a process pool costs ~1 s to start: not worth it for small sets
        return sum(map(_write_image, jobs))
    # spawn, not fork: the caller may be a training process with live torch/OpenCV threads.
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
        return sum(pool.imap_unordered(_write_image, jobs, chunksize=16))


def _data_yaml_text(params: dict) -> str:
    # No `path:`: splits resolve against the yaml's folder, so a copied dataset reads its own images.
    doc = {"train": "images/train", "val": "images/val"}
    if params["n_test"]:
        doc["test"] = "images/test"
    doc |= {"nc": len(CLASS_NAMES), "names": list(CLASS_NAMES), "synthetic": params}
    return ("# Synthetic X-ray baggage scans made by xray_exp.data.synthetic: not real scans.\n"
            "# Rebuild: xray-exp data synth --out DIR with the parameters under `synthetic`.\n"
            + yaml.safe_dump(doc, sort_keys=False))


class _TargetTaken(Exception):
    """Someone else's complete dataset appeared at the target while we were building ours."""


def _build(out: Path, params: dict, force: bool) -> Path:
    total = sum(params[f"n_{s}"] for s in SPLITS)
    try:
        with building_dir(out, force=force) as tmp:
            log.info("building synthetic dataset: %d images at %s px (seed %d) into %s",
                     total, params["imgsz"], params["seed"], out)
            n_labels = _generate_into(tmp, params)
            write_text(tmp / "data.yaml", _data_yaml_text(params))
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST) and out.is_dir():
            raise _TargetTaken(str(out)) from e
        raise XrayExpError(f"cannot write the dataset to {out}: {e.strerror or e}") from e
    log.info("wrote %d images with %d boxes: %s", total, n_labels, out / "data.yaml")
    return out / "data.yaml"


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise XrayExpError(f"{out} exists and is not a folder: choose another path")


def build_dataset(out: Path, n_train: int, n_val: int, n_test: int = 0, imgsz: int | Sequence[int] = 640,
                  seed: int = 0, force: bool = False) -> Path:
    """Write a synthetic YOLO dataset to out (atomically: all of it or nothing); returns out/data.yaml.

    imgsz is the side of square scans or [width, height] for non-square ones.

    An existing non-empty out is replaced only with force=True, and only once the new one is complete.
    """
    params = _params(n_train, n_val, n_test, imgsz, seed)
    out = Path(out).expanduser().absolute()
    _check_target(out)
    if not force and out.is_dir() and any(out.iterdir()):
        raise XrayExpError(f"{out} already exists and is not empty: choose another path or pass --force to replace it")
    try:
        return _build(out, params, force)
    except _TargetTaken:
        raise XrayExpError(f"{out} was created by another process while this one was building: "
                           "choose another path or pass --force to replace it") from None


def ensure_dataset(out: Path, n_train: int, n_val: int, n_test: int = 0, imgsz: int = 640, seed: int = 0) -> Path:
    """Return out/data.yaml, building the dataset first if it is not there.

    Safe when several processes call it at once: each builds in its own temp folder, the first rename
    wins and the others discard their copy. A dataset built with other parameters is never reused.
    """
    params = _params(n_train, n_val, n_test, imgsz, seed)
    out = Path(out).expanduser().absolute()
    _check_target(out)
    data_yaml = out / "data.yaml"
    if not data_yaml.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise XrayExpError(f"{out} is not empty but holds no data.yaml: choose another path for the dataset")
        try:
            return _build(out, params, force=False)
        except _TargetTaken:
            log.info("another process built %s first; using its dataset", out)
    found = (yaml.safe_load(data_yaml.read_text()) or {}).get("synthetic")
    if found != params:
        want = ", ".join(f"{k}={v}" for k, v in params.items() if k != "generator")
        have = ", ".join(f"{k}={v}" for k, v in found.items() if k != "generator") if isinstance(found, dict) else "unknown parameters"
        raise XrayExpError(f"{out} holds a dataset built with {have}, not the requested {want}: ask for the "
                           "parameters it was built with, or build this one in another folder (dataset.data=<folder>"
                           "/data.yaml); runs that used it need it as it is")
    return data_yaml


def write_preview(data_yaml: Path, out_png: Path, n: int = 16, split: str = "train") -> Path:
    """Draw n images of a split with their boxes into one PNG grid: the audit's gallery, so the synthetic
    data is looked at exactly as a real dataset would be. Returns the PNG's path."""
    from xray_exp.data.audit import write_gallery

    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise XrayExpError(f"no dataset at {data_yaml}: build it first (xray-exp data synth --out DIR ...)")
    if n < 1:
        raise XrayExpError(f"preview needs at least one image, got n={n}")
    return write_gallery(data_yaml, out_png, n=n, split=split)
