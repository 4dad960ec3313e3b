"""Random street scenes for the synthetic KITTI data set.

Everything lives in the rectified camera-0 frame of KITTI labels (x right, y down, z forward):
the ground is a plane about 1.65 m below camera 0 (1.73 m below the LiDAR), and every object
is an upright box standing on it, parametrised exactly like a KITTI label: bottom centre,
size (length along the box's x, height, width along its z) and ``rotation_y`` around the
camera's y axis (KITTI's ``roty``: box x axis = ``(cos ry, 0, -sin ry)``). Box parameters are
rounded to the label file's 0.01 precision BEFORE rendering, so the labels are exact; the solid
body that the sensors see sits a few centimetres inside its label box (see ``BODY_INSET``).

Labelled classes use KITTI's size statistics; distractors (poles, walls: not labelled; crates:
``Misc``; cars beyond 75 m: ``DontCare``) populate the rest. Boxes never overlap in
bird's-eye view.
"""
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .synthetic_appearance import sample_appearance

CAMERA_HEIGHT = 1.65  # metres of camera 0 above the ground (the LiDAR is ~0.08 m higher)
# kind -> (mean, std, min, max) of length, height, width: KITTI's statistics
SIZE_STATS = {
    'car': ((3.88, 0.43, 3.0, 5.3), (1.53, 0.14, 1.3, 2.0), (1.63, 0.10, 1.4, 1.95)),
    'pedestrian': ((0.84, 0.23, 0.45, 1.3), (1.76, 0.11, 1.4, 2.0), (0.66, 0.14, 0.4, 1.0)),
    'cyclist': ((1.76, 0.18, 1.3, 2.1), (1.74, 0.09, 1.45, 2.0), (0.60, 0.12, 0.4, 0.9)),
}
KITTI_NAME = {'car': 'Car', 'pedestrian': 'Pedestrian', 'cyclist': 'Cyclist', 'crate': 'Misc'}
FOV_TAN = 0.85  # |x| / z of the image's left / right edge at KITTI's intrinsics
BEV_MARGIN = 0.3  # metres kept free around every box
# The solid body is a little smaller than its label box, as KITTI's annotated boxes are a
# little larger than the objects: LiDAR points (2 cm range noise) and the small tilt between
# the LiDAR and the rectified camera frame then stay inside the box mmdet3d builds.
BODY_INSET = 0.08  # metres off each side and off the top (at most 12 % of the size)
EGO_BEV = (0.0, -1.2, 4.6, 2.2, 0.0)  # x, z, extent along x, along z, angle: our own car


@dataclass
class GroundPlane:
    """``y = y0 + slope_x * x + slope_z * z`` (camera frame, y down), with its texture salt."""
    y0: float
    slope_x: float
    slope_z: float
    salt: int
    asphalt_rgb: np.ndarray
    offroad_rgb: np.ndarray

    def height_at(self, x, z):
        return self.y0 + self.slope_x * x + self.slope_z * z


@dataclass
class SceneObject:
    """An upright box in the rectified camera frame, parametrised as a KITTI label
    (the label box; the solid body inside it is :meth:`body`)."""
    kind: str
    label: Optional[str]  # KITTI type written to label_2 (None: an unlabelled distractor)
    bottom_center: np.ndarray  # (3,) x, y, z of the bottom face's centre
    lhw: np.ndarray  # (3,) length (box x), height (box y), width (box z)
    rotation_y: float
    part_rgb: np.ndarray  # (3, 3) RGB per part
    part_reflectance: np.ndarray  # (3,)

    @property
    def center(self) -> np.ndarray:
        return self.bottom_center - np.array([0.0, self.lhw[1] / 2, 0.0])

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) box axes -> camera axes (KITTI's ``roty``)."""
        c, s = np.cos(self.rotation_y), np.sin(self.rotation_y)
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def body(self):
        """Centre (3,) and half extents (3,) of the solid body (box frame axes): the label box
        shrunk by BODY_INSET on every side but the bottom, which stays on the ground."""
        inset = np.minimum(BODY_INSET, 0.12 * self.lhw)
        half = self.lhw / 2 - inset * np.array([1.0, 0.5, 1.0])
        return self.center + np.array([0.0, inset[1] / 2, 0.0]), half

    def corners(self) -> np.ndarray:
        """(8, 3) corners in the camera frame."""
        signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
        return (signs * (self.lhw / 2)) @ self.rotation.T + self.center


@dataclass
class Scene:
    ground: GroundPlane
    objects: List[SceneObject] = field(default_factory=list)
    light_dir: np.ndarray = None  # (3,) unit vector towards the sun, camera frame
    sky_top_rgb: np.ndarray = None
    sky_horizon_rgb: np.ndarray = None
    exposure: float = 1.0


def bev_corners(x, z, length, width, rotation_y) -> np.ndarray:
    """(..., 4, 2) bird's-eye corners (x, z) of boxes, KITTI's rotation convention."""
    x, z, length, width, ry = np.broadcast_arrays(*map(np.asarray, (x, z, length, width, rotation_y)))
    local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], float) * 0.5  # (4, 2): along x, along z
    lx = local[:, 0] * length[..., None]
    lz = local[:, 1] * width[..., None]
    c, s = np.cos(ry)[..., None], np.sin(ry)[..., None]
    return np.stack([c * lx + s * lz + x[..., None], -s * lx + c * lz + z[..., None]], axis=-1)


def bev_overlaps(candidate: np.ndarray, placed: np.ndarray) -> bool:
    """Separating-axis test of one rectangle (4, 2) against many (n, 4, 2); True if any overlap."""
    if len(placed) == 0:
        return False
    placed = np.asarray(placed)
    edges = np.concatenate([np.broadcast_to(candidate[None, :2] - candidate[None, 1:3], (len(placed), 2, 2)),
                            placed[:, :2] - placed[:, 1:3]], axis=1)  # (n, 4 axes, 2)
    proj_c = np.einsum('nak,ck->nac', edges, candidate)  # (n, 4 axes, 4 corners)
    proj_p = np.einsum('nak,nck->nac', edges, placed)
    separated = (proj_c.max(-1) < proj_p.min(-1)) | (proj_p.max(-1) < proj_c.min(-1))
    return bool((~separated.any(axis=1)).any())


class _Placer:
    """Rejection sampler that keeps boxes apart in bird's-eye view."""

    def __init__(self, rng):
        self.rng = rng
        self.footprints = [bev_corners(*EGO_BEV)]

    def try_place(self, sample_xz, length, width, rotation_y, tries=25):
        for _ in range(tries):
            x, z = sample_xz()
            rect = bev_corners(x, z, length + 2 * BEV_MARGIN, width + 2 * BEV_MARGIN, rotation_y)
            if not bev_overlaps(rect, np.array(self.footprints)):
                self.footprints.append(rect)
                return x, z
        return None


def _sample_size(rng, kind):
    return np.array([np.clip(rng.normal(m, s), lo, hi) for m, s, lo, hi in SIZE_STATS[kind]])


def _road_yaw(rng, aligned_prob):
    if rng.random() < aligned_prob:  # driving along the road, either way
        return rng.choice([-np.pi / 2, np.pi / 2]) + rng.normal(0, 0.12)
    return rng.uniform(-np.pi, np.pi)


def _wrap_round(angle):
    angle = (angle + np.pi) % (2 * np.pi) - np.pi
    return float(np.clip(np.round(angle, 2), -3.14, 3.14))


def _in_view_xz(rng, z_range, beta, max_abs_x=22.0):
    def sample():
        z = z_range[0] + (z_range[1] - z_range[0]) * rng.beta(*beta)
        half = min(FOV_TAN * z, max_abs_x)
        return rng.uniform(-half, half), z
    return sample


def sample_scene(rng: np.random.Generator) -> Scene:
    """One random street scene (see the module docstring)."""
    ground = GroundPlane(
        # gentle slopes (<= 0.35 deg) keep objects inside mmdet3d's KITTI z range (-3..1 m)
        y0=CAMERA_HEIGHT + rng.normal(0, 0.03), slope_x=float(np.clip(rng.normal(0, 0.003), -0.006, 0.006)),
        slope_z=float(np.clip(rng.normal(0, 0.003), -0.006, 0.006)), salt=int(rng.integers(1 << 30)),
        asphalt_rgb=(np.array([92, 92, 98]) * rng.uniform(0.8, 1.2)).astype(np.float32),
        offroad_rgb=np.array([[95, 115, 60], [150, 145, 140]][rng.integers(2)], np.float32))
    sun = np.array([rng.uniform(-0.7, 0.7), -1.0, rng.uniform(-0.9, 0.3)])
    scene = Scene(ground=ground, light_dir=sun / np.linalg.norm(sun),
                  sky_top_rgb=np.array([95, 145, 215], np.float32) * rng.uniform(0.8, 1.1),
                  sky_horizon_rgb=np.array([200, 212, 228], np.float32) * rng.uniform(0.85, 1.05),
                  exposure=float(rng.uniform(0.85, 1.15)))
    placer = _Placer(rng)

    def add(kind, label, lhw, ry, sample_xz):
        lhw = np.maximum(np.round(lhw, 2), 0.05)
        ry = _wrap_round(ry)
        spot = placer.try_place(sample_xz, lhw[0], lhw[2], ry)
        if spot is None:
            return
        x, z = np.round(spot, 2)
        y = round(float(ground.height_at(x, z)), 2)
        rgb, refl = sample_appearance(kind, rng)
        scene.objects.append(SceneObject(kind, label, np.array([x, y, z]), lhw, ry, rgb, refl))

    # walls first: long, along the road, beyond the kerb (never labelled)
    for _ in range(rng.integers(0, 3)):
        side = rng.choice([-1, 1])
        lhw = np.array([rng.uniform(8, 30), rng.uniform(1.5, 3.5), rng.uniform(0.3, 0.5)])
        add('wall', None, lhw, np.pi / 2 + rng.normal(0, 0.04),
            lambda: (side * rng.uniform(10, 20), rng.uniform(0, 60)))
    # the labelled classes, in front within the camera's view, 5-70 m
    counts = {'car': rng.integers(4, 11), 'cyclist': rng.integers(2, 6), 'pedestrian': rng.integers(2, 7)}
    for kind, count in counts.items():
        for _ in range(count):
            ry = _road_yaw(rng, {'car': 0.65, 'cyclist': 0.6, 'pedestrian': 0.0}[kind])
            z_range, beta = ((5, 70), (1.3, 1.9)) if kind == 'car' else ((5, 55), (1.2, 2.0))
            add(kind, KITTI_NAME[kind], _sample_size(rng, kind), ry, _in_view_xz(rng, z_range, beta))
    # unlabelled traffic behind us: the LiDAR sees 360 degrees, the camera does not
    for kind in ['car'] * rng.integers(0, 4) + ['pedestrian'] * rng.integers(0, 3):
        add(kind, None, _sample_size(rng, kind), _road_yaw(rng, 0.6),
            lambda: (rng.uniform(-20, 20), rng.uniform(-40, -8)))
    # crates and boxes of other sizes: Misc
    for _ in range(rng.integers(1, 4)):
        lhw = rng.uniform([0.5, 0.4, 0.5], [2.4, 2.2, 2.4])
        add('crate', 'Misc', lhw, rng.uniform(-np.pi, np.pi), _in_view_xz(rng, (5, 40), (1.2, 1.5)))
    # poles by the road, in front and behind
    for _ in range(rng.integers(3, 9)):
        thick = rng.uniform(0.15, 0.35)
        add('pole', None, np.array([thick, rng.uniform(3, 7), thick]), 0.0,
            lambda: (rng.choice([-1, 1]) * rng.uniform(4.5, 14), rng.uniform(-30, 70)))
    # cars too far for KITTI's annotators: DontCare regions
    for _ in range(rng.integers(0, 3)):
        add('car', 'DontCare', _sample_size(rng, 'car'), _road_yaw(rng, 0.8),
            _in_view_xz(rng, (75, 100), (1, 1), max_abs_x=30))
    return scene
