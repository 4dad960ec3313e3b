"""What the synthetic objects look like to the camera (colour) and to the LiDAR (reflectance).

Each kind of object is split into a few horizontal parts by the height of the surface point
(a car's dark lower band, body and windows; a pedestrian's legs, torso and head; a cyclist's
bike, jersey and helmet). Every object draws its own colour and reflectance per part, so
appearance differs by class and varies within a class.
"""
import numpy as np

# kind -> names of its parts, in the order of the part index (see surface_part)
PARTS = {
    'car': ('body', 'window', 'lower'),
    'pedestrian': ('legs', 'torso', 'head'),
    'cyclist': ('bike', 'jersey', 'helmet'),
    'pole': ('metal',),
    'wall': ('concrete',),
    'crate': ('wood',),
}
MAX_PARTS = 3

CAR_PAINTS = np.array([[170, 30, 30], [120, 20, 30], [200, 60, 40],      # reddish
                       [30, 50, 160], [25, 30, 95], [60, 100, 190],      # bluish
                       [225, 225, 225], [160, 165, 172], [35, 35, 40], [85, 85, 90]], np.float32)
CAR_PAINT_WEIGHTS = np.array([3, 2, 2, 3, 2, 2, 2, 2, 1, 1], np.float64)
CYCLIST_JERSEYS = np.array([[235, 205, 30], [40, 185, 60], [245, 125, 20], [30, 190, 205],
                            [220, 40, 160]], np.float32)
SKIN_TONES = np.array([[205, 160, 130], [165, 115, 85], [110, 75, 55], [60, 45, 35]], np.float32)


def surface_part(kind: str, height_fraction: np.ndarray, face_axis: np.ndarray) -> np.ndarray:
    """Part index of surface points.

    Args:
        height_fraction: (...) height of the point above the box bottom / box height, 0..1.
        face_axis: (...) box axis of the face hit: 0 front/back, 1 top/bottom, 2 sides.

    Returns:
        int8 array (...) indexing ``PARTS[kind]``.
    """
    hf = height_fraction
    part = np.zeros(np.shape(hf), np.int8)
    if kind == 'car':
        vertical = face_axis != 1
        part[vertical & (hf > 0.58) & (hf < 0.92)] = 1
        part[vertical & (hf < 0.25)] = 2
    elif kind == 'pedestrian':
        part[hf >= 0.47] = 1
        part[hf >= 0.86] = 2
    elif kind == 'cyclist':
        part[hf >= 0.42] = 1
        part[hf >= 0.87] = 2
    return part


def _jitter(rng, rgb, spread=18.0, brightness=(0.8, 1.2)):
    rgb = np.asarray(rgb, np.float32) * rng.uniform(*brightness) + rng.normal(0, spread, 3)
    return np.clip(rgb, 5, 250).astype(np.float32)


def sample_appearance(kind: str, rng: np.random.Generator):
    """Colours (MAX_PARTS, 3) RGB 0..255 and reflectances (MAX_PARTS,) 0..1 of one object."""
    rgb = np.zeros((MAX_PARTS, 3), np.float32)
    refl = np.zeros(MAX_PARTS, np.float32)
    if kind == 'car':
        paint = CAR_PAINTS[rng.choice(len(CAR_PAINTS), p=CAR_PAINT_WEIGHTS / CAR_PAINT_WEIGHTS.sum())]
        rgb[0] = _jitter(rng, paint)
        rgb[1] = _jitter(rng, (45, 55, 70), spread=6, brightness=(0.6, 1.1))
        rgb[2] = _jitter(rng, (28, 28, 30), spread=4)
        refl[:3] = rng.uniform(0.25, 0.65), 0.05, 0.12
    elif kind == 'pedestrian':
        rgb[0] = _jitter(rng, [(45, 55, 95), (30, 30, 32), (80, 65, 50)][rng.integers(3)], spread=10)
        rgb[1] = np.clip(rng.uniform(20, 120, 3), 5, 250).astype(np.float32)  # dark, any hue
        rgb[2] = _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], spread=8)
        refl[:3] = rng.uniform(0.12, 0.3), rng.uniform(0.18, 0.45), 0.25
    elif kind == 'cyclist':
        rgb[0] = _jitter(rng, (32, 32, 38), spread=5)
        rgb[1] = _jitter(rng, CYCLIST_JERSEYS[rng.integers(len(CYCLIST_JERSEYS))], spread=12,
                         brightness=(0.85, 1.1))
        rgb[2] = _jitter(rng, [(230, 230, 230), (200, 30, 30), (20, 20, 20)][rng.integers(3)], spread=8)
        refl[:3] = 0.5, rng.uniform(0.3, 0.6), 0.4
    elif kind == 'pole':
        rgb[0] = _jitter(rng, (125, 125, 130), spread=10)
        refl[0] = 0.55
    elif kind == 'wall':
        rgb[0] = _jitter(rng, (150, 140, 125), spread=15)
        refl[0] = rng.uniform(0.2, 0.4)
    elif kind == 'crate':
        rgb[0] = _jitter(rng, (140, 95, 50), spread=15)
        refl[0] = rng.uniform(0.3, 0.5)
    else:
        raise ValueError(f'unknown object kind {kind!r}')
    return rgb, refl


# ground: asphalt road with lane markings between sidewalk / grass strips
ROAD_HALF_WIDTH = 7.5
LANE_LINES_X = (-3.5, 0.0, 3.5)
LANE_HALF_WIDTH = 0.07
DASH_PERIOD, DASH_LENGTH = 9.0, 3.0


def ground_cells(x: np.ndarray, z: np.ndarray, cell: float, salt: int) -> np.ndarray:
    """Deterministic value noise 0..1 on a grid of ``cell`` metres (a per-cell integer hash)."""
    ix = np.floor(x * (1.0 / cell)).astype(np.int64)
    iz = np.floor(z * (1.0 / cell)).astype(np.int64)
    h = (ix * 73856093) ^ (iz * 19349663) ^ salt
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 8) & 0xFF).astype(np.float32) * (1.0 / 255.0)


def ground_material(x: np.ndarray, z: np.ndarray, salt: int):
    """Surface classes of ground points: 0 asphalt, 1 lane marking, 2 off-road; and noise 0..1.

    Args:
        x, z: (...) rectified camera-frame coordinates of ground points.
    """
    noise = ground_cells(x, z, 0.35, salt)
    kind = np.where(np.abs(x) > ROAD_HALF_WIDTH, 2, 0).astype(np.int8)
    near_line = np.zeros(np.shape(x), bool)
    for line_x in LANE_LINES_X:
        near_line |= np.abs(x - line_x) < LANE_HALF_WIDTH
    dashed = np.mod(z, DASH_PERIOD) < DASH_LENGTH
    kind[near_line & dashed & (kind == 0)] = 1
    return kind, noise
