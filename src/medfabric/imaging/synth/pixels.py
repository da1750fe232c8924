"""Pixel data for the synthetic corpus: numpy phantoms of a thorax (CT), a head (MR), a chest
radiograph (CR), an abdominal ultrasound sector (US) and a screen capture (SC).

Phantom templates depend only on geometry and are cached per process; per-instance variation is a
cheap slice of a seeded noise pool, so a 512×512 CT slice costs one array addition.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TypeVar

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]
UInt16Array = npt.NDArray[np.uint16]
UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]
ArrayT = TypeVar("ArrayT", Int16Array, UInt16Array)

CT_RESCALE_INTERCEPT = -1024  # stored value = HU - intercept
TEMPLATE_COUNT = 12  # distinct anatomical levels per series; slices in between reuse the nearest
NOISE_MARGIN = 97  # extra rows in a noise pool: each instance starts at its own row offset


def _grid(rows: int, columns: int) -> tuple[FloatArray, FloatArray]:
    """Normalised coordinates: y and x in [-1, 1], y growing downwards (towards posterior)."""
    y = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, columns, dtype=np.float32)[None, :]
    return y, x


def _ellipse(
    y: FloatArray, x: FloatArray, cy: float, cx: float, ry: float, rx: float
) -> npt.NDArray[np.bool_]:
    return np.asarray(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0)


def _readonly(array: ArrayT) -> ArrayT:
    array.flags.writeable = False  # cached templates are shared by every caller
    return array


@lru_cache(maxsize=16)
def ct_templates(rows: int, columns: int, body_variant: int) -> Int16Array:
    """TEMPLATE_COUNT axial thorax slices from apex (0) to diaphragm, as stored values (HU + 1024)."""
    y, x = _grid(rows, columns)
    widen = 1.0 + 0.06 * body_variant
    out = np.empty((TEMPLATE_COUNT, rows, columns), dtype=np.int16)
    for level in range(TEMPLATE_COUNT):
        t = level / (TEMPLATE_COUNT - 1)
        hu = np.full((rows, columns), -1000.0, dtype=np.float32)
        hu[(y > 0.78) & (y < 0.84) & (np.abs(x) < 0.9)] = 150.0  # patient table
        hu[_ellipse(y, x, 0.05, 0.0, 0.62, 0.86 * widen)] = -100.0  # subcutaneous fat
        hu[_ellipse(y, x, 0.05, 0.0, 0.56, 0.79 * widen)] = 40.0  # muscle and soft tissue
        lung_ry = 0.22 + 0.2 * np.sin(np.pi * min(1.0, 0.25 + t))
        for side in (-1.0, 1.0):
            hu[_ellipse(y, x, -0.02, side * 0.36 * widen, lung_ry, 0.27 * widen)] = -850.0
        vessels = np.random.default_rng([level, body_variant, rows])
        for _ in range(14):  # pulmonary vessels, fixed per level so neighbouring slices agree
            cy, cx = (
                float(vessels.uniform(-0.2, 0.15)),
                float(vessels.choice([-1, 1]) * vessels.uniform(0.2, 0.5)),
            )
            hu[_ellipse(y, x, cy, cx * widen, 0.025, 0.025)] = -60.0
        if t > 0.3:
            hu[_ellipse(y, x, 0.02, 0.1, 0.2 + 0.05 * t, 0.24)] = 45.0  # heart
            hu[_ellipse(y, x, 0.0, 0.06, 0.1, 0.12)] = 160.0  # contrast-filled chambers
        hu[_ellipse(y, x, 0.22, -0.08, 0.07, 0.07)] = 180.0  # descending aorta
        hu[_ellipse(y, x, 0.42, 0.0, 0.11, 0.11)] = 1100.0  # vertebral cortex
        hu[_ellipse(y, x, 0.42, 0.0, 0.085, 0.085)] = 300.0  # cancellous bone
        hu[_ellipse(y, x, 0.56, 0.0, 0.04, 0.04)] = 20.0  # spinal canal
        hu[_ellipse(y, x, -0.48, 0.0, 0.04, 0.09)] = 700.0  # sternum
        for angle in (0.25, 0.75, 1.15, 2.0, 2.4, 2.85):  # ribs along the chest wall, both sides
            for sign in (-1.0, 1.0):
                cy, cx = 0.05 + 0.5 * sign * float(np.sin(angle)), 0.72 * widen * float(np.cos(angle))
                hu[_ellipse(y, x, cy, cx, 0.03, 0.045)] = 900.0
        out[level] = np.clip(hu - CT_RESCALE_INTERCEPT, -2048, 4095).astype(np.int16)
    return _readonly(out)


@lru_cache(maxsize=16)
def mr_templates(rows: int, columns: int, weighting: str) -> UInt16Array:
    """TEMPLATE_COUNT axial head slices (12-bit), intensities after the T1 or T2 contrast."""
    tissue = {  # scalp/fat, skull, grey matter, white matter, CSF
        "T1": (2600.0, 150.0, 1300.0, 1800.0, 300.0),
        "T2": (1700.0, 100.0, 1900.0, 1400.0, 3600.0),
    }[weighting]
    fat, bone, grey, white, csf = tissue
    y, x = _grid(rows, columns)
    out = np.empty((TEMPLATE_COUNT, rows, columns), dtype=np.uint16)
    for level in range(TEMPLATE_COUNT):
        s = 1.0 - 0.5 * abs(level / (TEMPLATE_COUNT - 1) - 0.4)  # head narrows towards the vertex
        image = np.zeros((rows, columns), dtype=np.float32)
        image[_ellipse(y, x, 0.0, 0.0, 0.9 * s, 0.75 * s)] = fat
        image[_ellipse(y, x, 0.0, 0.0, 0.85 * s, 0.7 * s)] = bone
        image[_ellipse(y, x, 0.0, 0.0, 0.8 * s, 0.65 * s)] = grey
        image[_ellipse(y, x, 0.0, 0.0, 0.68 * s, 0.53 * s)] = white
        for side in (-1.0, 1.0):
            image[_ellipse(y, x, -0.05, side * 0.1, 0.25 * s, 0.06 * s)] = csf  # lateral ventricles
        out[level] = np.clip(image, 0, 4095).astype(np.uint16)
    return _readonly(out)


def noise_pool(
    rng: np.random.Generator, rows: int, columns: int, sigma: float, *, unsigned: bool
) -> Int16Array:
    """Noise for one series: rows + NOISE_MARGIN rows, so each instance takes its own window."""
    noise = rng.normal(0.0, sigma, size=(rows + NOISE_MARGIN, columns))
    if unsigned:  # magnitude images carry Rician-like, non-negative noise
        noise = np.abs(noise)
    return noise.astype(np.int16)


def vary(template: Int16Array | UInt16Array, pool: Int16Array, offset: int) -> Int16Array | UInt16Array:
    """One instance's pixels: the template plus a window of the noise pool (one array addition)."""
    window = pool[offset : offset + template.shape[0]]
    if template.dtype == np.uint16:
        return np.add(template, window.view(np.uint16), dtype=np.uint16)
    return np.add(template, window, dtype=np.int16)


def _box_blur(image: FloatArray, radius: int) -> FloatArray:
    """Separable box blur by cumulative sums: softens phantom edges as a detector would."""
    if radius < 1:
        return image
    for axis in (0, 1):
        padded = np.concatenate(
            [
                np.repeat(image.take([0], axis), radius + 1, axis),
                image,
                np.repeat(image.take([-1], axis), radius, axis),
            ],
            axis=axis,
        )
        summed = np.cumsum(padded, axis=axis, dtype=np.float32)
        upper = summed.take(np.arange(2 * radius + 1, summed.shape[axis]), axis=axis)
        lower = summed.take(np.arange(0, summed.shape[axis] - 2 * radius - 1), axis=axis)
        image = (upper - lower) / np.float32(2 * radius + 1)
    return image


def radiograph(rows: int, columns: int, lateral: bool, rng: np.random.Generator) -> UInt16Array:
    """A chest radiograph (PA or lateral), 12-bit, MONOCHROME2: more attenuation is brighter."""
    y, x = _grid(rows, columns)
    image = np.full((rows, columns), 150.0, dtype=np.float32)
    if lateral:
        image[_ellipse(y, x, 0.05, 0.0, 0.8, 0.55)] = 1900.0
        image[_ellipse(y, x, -0.05, -0.05, 0.55, 0.4)] = 900.0
        image[(np.abs(x - 0.36) < 0.06) & (np.abs(y) < 0.7)] = 2800.0  # spine
        image[_ellipse(y, x, 0.15, -0.15, 0.25, 0.2)] = 2200.0  # heart
    else:
        image[_ellipse(y, x, 0.05, 0.0, 0.85, 0.8)] = 1900.0
        for side in (-1.0, 1.0):
            image[_ellipse(y, x, -0.05, side * 0.38, 0.6, 0.28)] = 800.0
        image[(np.abs(x) < 0.06) & (np.abs(y) < 0.85)] = 2600.0  # spine behind the mediastinum
        image[_ellipse(y, x, 0.25, 0.12, 0.25, 0.25)] = 2300.0  # heart
        for rib in range(9):
            band = np.abs(y + 0.55 - rib * 0.13 - 0.08 * x**2) < 0.018
            image[band & (np.abs(x) > 0.1) & (np.abs(x) < 0.7)] += 500.0
    image = _box_blur(image, max(1, rows // 200))
    image += rng.normal(0.0, 25.0, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 4095).astype(np.uint16)


def ultrasound(rows: int, columns: int, rng: np.random.Generator) -> UInt8Array:
    """An abdominal B-mode sector with speckle, plus burned-in annotation bars (RGB, interleaved)."""
    y, x = _grid(rows, columns)
    depth = np.sqrt((y + 1.1) ** 2 + x**2)
    angle = np.arctan2(x, y + 1.1)
    sector = (np.abs(angle) < 0.6) & (depth > 0.25) & (depth < 2.0)
    speckle = rng.rayleigh(60.0, size=(rows, columns)).astype(np.float32)
    gray = np.where(sector, speckle * (1.3 - 0.4 * depth), 0.0)
    gray[_ellipse(y, x, 0.3, 0.1, 0.18, 0.25) & sector] *= 0.15  # gallbladder: anechoic
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    bar = max(2, rows // 20)
    rgb[:bar, : columns // 2] = (255, 220, 0)  # stands in for burned-in patient name and date
    rgb[-bar:, columns // 3 :] = (0, 200, 255)  # measurement caption
    rgb[rows // 4 : 3 * rows // 4, -max(2, columns // 40) :] = np.linspace(
        0, 255, 3 * rows // 4 - rows // 4, dtype=np.uint8
    )[:, None, None]
    return rgb


def screen_capture(rows: int, columns: int, rng: np.random.Generator) -> UInt8Array:
    """A workstation screenshot: a grey image viewport, a window frame and a text banner (RGB)."""
    rgb = np.zeros((rows, columns, 3), dtype=np.uint8)
    rgb[:, :] = (32, 36, 44)
    viewport = ct_templates(64, 64, 0)[TEMPLATE_COUNT // 2]
    scale_r, scale_c = max(1, (rows * 3 // 4) // 64), max(1, (columns * 3 // 4) // 64)
    gray = np.clip((viewport.astype(np.int32) - 600) // 4, 0, 255).astype(np.uint8)
    gray = np.kron(gray, np.ones((scale_r, scale_c), dtype=np.uint8))
    top, left = rows // 8, columns // 8
    h, w = min(gray.shape[0], rows - top), min(gray.shape[1], columns - left)
    rgb[top : top + h, left : left + w] = gray[:h, :w, None]
    rgb[: max(2, rows // 16)] = (200, 30, 30)  # title bar with the patient's name
    rgb[top : top + h, left : left + w, 2] = np.clip(
        rgb[top : top + h, left : left + w, 2].astype(np.int16) + rng.integers(0, 8, (h, w)), 0, 255
    ).astype(np.uint8)
    return rgb
