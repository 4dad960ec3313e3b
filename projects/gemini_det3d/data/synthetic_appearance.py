"""Materials: what a surface looks like to the camera and what it returns to the LiDAR.

Reflectance comes from the material, never from the object's class: a car's tyre, a parked
bicycle's tyre and a trailer's tyre draw from the same rubber distribution, a pedestrian's
jacket and a car's seats from the same fabric one. Real 905 nm returns follow the material:
dark paint and dark clothing absorb the near infrared, so black cars return few and weak
points (a known cause of missed black cars), glass transmits most of the beam (the LiDAR sees
a car's seats through its windows, or nothing), vegetation is bright in the near infrared
but porous (part of the beam goes through a hedge), retroreflective sign sheeting saturates.

Each material has a reflectance law (mean and spread; for paint and fabric the mean falls
with the colour's darkness), a LiDAR return probability below one for the porous and
transparent ones, a share of the surface the camera sees through (foliage gaps, spokes) and
a texture (cell size and contrast of value noise on the surface).
"""
from typing import NamedTuple, Optional

import numpy as np


class Material(NamedTuple):
    reflectance: float  # mean 905 nm reflectance (paint / fabric: at white, see reflectance_of)
    spread: float  # standard deviation of the per-object draw
    lidar_return: float  # probability that a beam hitting the surface returns from it
    camera_gaps: float  # share of the surface the camera sees through
    texture_cell: float  # metres
    texture_contrast: float  # 0..1
    darkness_floor: Optional[float]  # reflectance of black where it falls with luminance (paint, fabric)


MATERIALS = {
    'paint': Material(0.55, 0.04, 1.0, 0.0, 0.5, 0.03, 0.03),
    'fabric': Material(0.50, 0.05, 1.0, 0.0, 0.05, 0.25, 0.06),
    'skin': Material(0.40, 0.05, 1.0, 0.0, 0.05, 0.05, None),
    'metal': Material(0.45, 0.15, 1.0, 0.0, 0.2, 0.12, None),
    'plastic': Material(0.28, 0.08, 1.0, 0.0, 0.2, 0.08, None),
    'glass': Material(0.06, 0.02, 0.2, 0.0, 1.0, 0.05, None),
    'rubber': Material(0.06, 0.02, 1.0, 0.0, 0.1, 0.05, None),
    'spokes': Material(0.35, 0.10, 0.25, 0.7, 0.03, 0.3, None),  # a wheel's spoked disc
    'foliage': Material(0.45, 0.10, 0.5, 0.3, 0.08, 0.45, None),
    'bark': Material(0.30, 0.06, 1.0, 0.0, 0.06, 0.4, None),
    'wood': Material(0.32, 0.06, 1.0, 0.0, 0.1, 0.3, None),
    'concrete': Material(0.30, 0.06, 1.0, 0.0, 0.3, 0.2, None),
    'retro': Material(0.90, 0.05, 1.0, 0.0, 1.0, 0.05, None),
}
MATERIAL_NAMES = tuple(MATERIALS)
MATERIAL_ID = {name: i for i, name in enumerate(MATERIAL_NAMES)}
LIDAR_RETURN = np.array([m.lidar_return for m in MATERIALS.values()], np.float64)
CAMERA_GAPS = np.array([m.camera_gaps for m in MATERIALS.values()], np.float32)
TEXTURE_CELL = np.array([m.texture_cell for m in MATERIALS.values()], np.float64)
TEXTURE_CONTRAST = np.array([m.texture_contrast for m in MATERIALS.values()], np.float32)

# colour palettes (RGB 0..255), by what things are made of in a German town
# white, silver, grey, black, dark blue, blue, red, orange-red, green, brown
CAR_PAINTS = np.array([[225, 225, 225], [165, 168, 172], [100, 102, 108], [30, 30, 34],
                       [25, 35, 80], [60, 95, 170], [150, 25, 30], [200, 60, 40],
                       [30, 80, 45], [120, 100, 70]], np.float32)
# grey, black and white dominate German traffic
CAR_PAINT_WEIGHTS = np.array([4, 4, 3, 4, 2, 1.5, 1.5, 1, 0.5, 0.5], np.float64)
CLOTHES = np.array([[25, 25, 30], [45, 45, 55], [30, 40, 80], [70, 75, 85], [110, 90, 70],
                    [150, 150, 150], [200, 200, 195], [150, 40, 40], [40, 90, 60], [220, 190, 60]],
                   np.float32)
CLOTHES_WEIGHTS = np.array([4, 3, 3, 2, 1.5, 1, 1, 1, 1, 0.5], np.float64)  # dark clothing is common
SKIN_TONES = np.array([[205, 160, 130], [165, 115, 85], [110, 75, 55], [60, 45, 35]], np.float32)


def luminance(rgb) -> np.ndarray:
    """Relative luminance 0..1 of RGB 0..255 colours (...,3)."""
    return np.asarray(rgb, np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32) / 255.0


def reflectance_of(material: str, rgb, rng: np.random.Generator) -> float:
    """One surface's 905 nm reflectance, drawn from its material's law (never from its class).

    Paint and fabric: the mean falls with the colour's luminance (squared) from white's to
    the material's floor (black paint ~0.035: carbon-black pigment absorbs the near
    infrared; black cloth ~0.065, many dyes being partly transparent there); the others: the
    material's mean and spread."""
    m = MATERIALS[material]
    mean, spread = m.reflectance, m.spread
    if m.darkness_floor is not None:  # the spread scales with the mean: a black car is uniformly weak
        mean = m.darkness_floor + (m.reflectance - m.darkness_floor) * float(luminance(rgb)) ** 2
        spread = m.spread * mean / m.reflectance
    return float(np.clip(rng.normal(mean, spread), 0.01, 0.99))


def jitter(rng, rgb, spread=12.0, brightness=(0.85, 1.15)):
    rgb = np.asarray(rgb, np.float32) * rng.uniform(*brightness) + rng.normal(0, spread, 3)
    return np.clip(rgb, 5, 250).astype(np.float32)


def pick(rng, palette, weights=None):
    p = None if weights is None else weights / weights.sum()
    return palette[rng.choice(len(palette), p=p)]


def value_noise(x, y, z, cell, salt: int) -> np.ndarray:
    """Deterministic value noise 0..1 on a 3D grid of ``cell`` metres (a per-cell integer hash).
    ``cell`` may be an array broadcastable with the coordinates."""
    inv = 1.0 / np.asarray(cell, np.float64)
    ix = np.floor(np.asarray(x) * inv).astype(np.int64)
    iy = np.floor(np.asarray(y) * inv).astype(np.int64)
    iz = np.floor(np.asarray(z) * inv).astype(np.int64)
    h = (ix * 73856093) ^ (iy * 83492791) ^ (iz * 19349663) ^ salt
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 8) & 0xFF).astype(np.float32) * (1.0 / 255.0)


# ground: asphalt road with lane markings, a kerb, then pavement slabs and grass
LANE_HALF_WIDTH = 0.07
DASH_PERIOD, DASH_LENGTH = 9.0, 3.0
# asphalt, lane marking, pavement, kerb stone, grass
GROUND_REFLECTANCE = np.array([0.15, 0.75, 0.25, 0.35, 0.45], np.float32)
ASPHALT, MARKING, PAVEMENT, KERB, GRASS = range(5)


def ground_material(x: np.ndarray, z: np.ndarray, piece: np.ndarray, ground):
    """Surface classes of ground points (ASPHALT, MARKING, PAVEMENT, KERB, GRASS) and noise 0..1.

    Args:
        x, z: (...) rectified camera-frame coordinates of ground points.
        piece: (...) which ground piece the point is on (:func:`~.raycast.ray_ground`).
    """
    noise = value_noise(x, 0.0, z, 0.35, ground.salt)
    kind = np.full(np.shape(x), ASPHALT, np.int8)
    near_line = np.zeros(np.shape(x), bool)
    for line_x in ground.lane_lines:
        near_line |= np.abs(x - line_x) < LANE_HALF_WIDTH
    dashed = np.mod(z, DASH_PERIOD) < DASH_LENGTH
    kind[near_line & dashed] = MARKING
    off_road = piece == 1
    grass = off_road & ((x < ground.left_edge - ground.pavement_width) |
                        (x > ground.right_edge + ground.pavement_width))
    kind[off_road] = PAVEMENT
    kind[grass] = GRASS
    kind[piece == 2] = KERB
    return kind, noise
