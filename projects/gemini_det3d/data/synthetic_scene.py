"""Random street scenes for the synthetic KITTI data set.

Everything lives in the rectified camera-0 frame of KITTI labels (x right, y down, z forward).
Each property below stands for a real phenomenon that decides how LiDAR-only detection fails
on KITTI; none is there to make a particular model win.

* Objects are unions of boxes, cylinders and ellipsoids (:mod:`.raycast`), not cuboids: cars
  with bonnet, glass cabin, seats, roof and boot and four wheels (the LiDAR goes through the
  windows: real car point clouds are hollow and L-shaped); vans and trucks; pedestrians with
  head, torso, arms and legs in a walking phase drawn per person (strides and swinging arms
  change the outline); cyclists as a spoked bike plus a bent rider; persons sitting on chairs.
  KITTI's other types are labelled with their names where KITTI has them: Van, Truck,
  Person_sitting, Misc (hand carts); far objects become DontCare regions.
* Surfaces carry materials (:mod:`.synthetic_appearance`): reflectance follows the material
  and its colour, never the class; dark paint and dark clothes return few points.
* Look-alikes, unlabelled as in KITTI: bollards, bins, sign posts, tree trunks, standing
  boards and parked bicycles are pedestrian / cyclist sized; hedges, containers and trailers
  are car sized. Their LiDAR geometry overlaps the labelled classes', their colours and
  textures are those of the real things (green foliage, rusty skips, ...).
* The ground is not a plane (:class:`Ground`): the road's slope changes along it, kerbs raise
  pavements 10-16 cm (pedestrians stand on them), parked cars stand in rows less than a metre
  apart, hedges and bushes by the kerb hide parts of people from the camera while the LiDAR
  partly sees through them.

Objects are parametrised exactly like a KITTI label: bottom centre, size (length along the
box's x, height, width along its z) and ``rotation_y`` (KITTI's ``roty``: box x axis =
``(cos ry, 0, -sin ry)``). The label box is the extent of the object's primitives plus
:data:`LABEL_PAD` (KITTI's boxes are a little larger than the objects; the pad also keeps
the LiDAR's 2 cm range noise and the small tilt between LiDAR and rectified frame inside the
box mmdet3d builds), rounded up to the label file's 0.01 m before anything is rendered, so the
labels are exact.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .raycast import BOX, CYLINDER, ELLIPSOID
from .synthetic_appearance import (CAR_PAINT_WEIGHTS, CAR_PAINTS, CLOTHES, CLOTHES_WEIGHTS,
                                   MATERIAL_ID, SKIN_TONES, jitter, pick, reflectance_of)

CAMERA_HEIGHT = 1.65  # metres of camera 0 above the road (the LiDAR is ~0.08 m higher)
FOV_TAN = 0.85  # |x| / z of the image's left / right edge at KITTI's intrinsics
BEV_MARGIN = 0.3  # metres kept free around most boxes (parked rows: see _parked_row)
LABEL_PAD = np.array([0.07, 0.06, 0.07])  # label box beyond the primitives: each side, top
EGO_BEV = (0.0, -1.2, 4.6, 2.2, 0.0)  # x, z, extent along x, along z, angle: our own car
# KITTI's size statistics (mean, std, min, max) of length, height, width for the types whose
# size the builders take as a target
SIZE_STATS = {
    'car': ((3.88, 0.43, 3.0, 5.3), (1.53, 0.14, 1.3, 2.0), (1.63, 0.10, 1.4, 1.95)),
    'van': ((5.08, 0.45, 4.2, 6.2), (2.21, 0.20, 1.8, 2.7), (1.90, 0.13, 1.65, 2.2)),
    'truck': ((10.1, 2.6, 6.0, 16.0), (3.25, 0.28, 2.6, 3.9), (2.58, 0.16, 2.3, 2.9)),
}


@dataclass
class Ground:
    """The ground in the camera frame (y down): road ``y = y0 + slope_x x + slope_z z +
    curve_z z^2`` between ``left_edge`` and ``right_edge`` (x), pavements raised by
    ``kerb_height`` beyond them (grass beyond ``pavement_width``)."""
    y0: float
    slope_x: float
    slope_z: float
    curve_z: float
    left_edge: float
    right_edge: float
    kerb_height: float
    pavement_width: float
    lane_lines: Tuple[float, ...]
    salt: int
    asphalt_rgb: np.ndarray
    pavement_rgb: np.ndarray
    grass_rgb: np.ndarray

    def road_height_at(self, x, z):
        x, z = np.asarray(x), np.asarray(z)
        return self.y0 + self.slope_x * x + self.slope_z * z + self.curve_z * z ** 2

    def height_at(self, x, z):
        """Camera-frame y of the ground surface (pavements are ``kerb_height`` higher)."""
        x = np.asarray(x)
        off_road = (x <= self.left_edge) | (x >= self.right_edge)
        return self.road_height_at(x, z) - self.kerb_height * off_road


@dataclass
class Parts:
    """An object's primitives, in its box frame (x along its length, y down, z along its
    width) relative to the label box's centre; ``n`` primitives."""
    shape: np.ndarray  # (n,) int8: raycast.BOX / CYLINDER / ELLIPSOID
    centre: np.ndarray  # (n, 3)
    axes: np.ndarray  # (n, 3, 3): primitive frame -> box frame
    half: np.ndarray  # (n, 3): half extents / radii (cylinder: axis along its y)
    material: np.ndarray  # (n,) int8 into synthetic_appearance.MATERIAL_NAMES
    rgb: np.ndarray  # (n, 3) float32
    reflectance: np.ndarray  # (n,) float32: drawn from the material (and colour)


@dataclass
class SceneObject:
    """An object in the rectified camera frame, parametrised as a KITTI label (its label box),
    made of the primitives in ``parts``."""
    kind: str
    label: Optional[str]  # KITTI type written to label_2 (None: unlabelled, as in KITTI)
    bottom_center: np.ndarray  # (3,) x, y, z of the label box's bottom face centre
    lhw: np.ndarray  # (3,) length (box x), height (box y), width (box z)
    rotation_y: float
    parts: Parts

    @property
    def center(self) -> np.ndarray:
        return self.bottom_center - np.array([0.0, self.lhw[1] / 2, 0.0])

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) box axes -> camera axes (KITTI's ``roty``)."""
        c, s = np.cos(self.rotation_y), np.sin(self.rotation_y)
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def corners(self) -> np.ndarray:
        """(8, 3) label box corners in the camera frame."""
        signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
        return (signs * (self.lhw / 2)) @ self.rotation.T + self.center

    def near_surface(self, points: np.ndarray, margin: float) -> np.ndarray:
        """(N,) which camera-frame points (N, 3) lie within about ``margin`` metres of one of
        the object's primitives (inside counts)."""
        local = (np.asarray(points, np.float64) - self.center) @ self.rotation
        near = np.zeros(len(local), bool)
        p = self.parts
        for k in range(len(p.shape)):
            q = (local - p.centre[k]) @ p.axes[k]
            h = p.half[k] + margin
            if p.shape[k] == BOX:
                near |= (np.abs(q) <= h).all(1)
            elif p.shape[k] == CYLINDER:
                near |= ((q[:, 0] / h[0]) ** 2 + (q[:, 2] / h[2]) ** 2 <= 1) & (np.abs(q[:, 1]) <= h[1])
            else:
                near |= ((q / h) ** 2).sum(1) <= 1
        return near


@dataclass
class Scene:
    ground: Ground
    objects: List[SceneObject] = field(default_factory=list)
    light_dir: np.ndarray = None  # (3,) unit vector towards the sun, camera frame
    sun: float = 1.0  # direct light strength (0: overcast)
    sky_top_rgb: np.ndarray = None
    sky_horizon_rgb: np.ndarray = None
    exposure: float = 1.0
    white_balance: np.ndarray = None  # (3,) RGB gains of the camera's automatic white balance


# --------------------------------------------------------------------------------------------
# object builders: primitives in an object frame with the bottom at y = 0 (y down), x forward
# --------------------------------------------------------------------------------------------
def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


AXLE = _rot_x(np.pi / 2)  # a cylinder's axis (its y) along the object's z: wheels


class _Builder:
    def __init__(self, rng):
        self.rng = rng
        self.prims = []

    def add(self, shape, centre, half, material, rgb, axes=None):
        self.prims.append((shape, np.asarray(centre, float), np.abs(np.asarray(half, float)),
                           material, np.asarray(rgb, np.float32), np.eye(3) if axes is None else axes))

    def box(self, lo, hi, material, rgb, axes=None):
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        self.add(BOX, (lo + hi) / 2, (hi - lo) / 2, material, rgb, axes)

    @staticmethod
    def _along(a, b):
        """Axes (3, 3) whose y runs from a to b (x stays in the object's x-y plane), and |b - a|."""
        axis = b - a
        length = np.linalg.norm(axis)
        y = axis / length
        x = np.cross(y, [0.0, 0.0, 1.0])
        if np.linalg.norm(x) < 1e-6:
            x = np.cross(y, [1.0, 0.0, 0.0])
        x /= np.linalg.norm(x)
        return np.stack([x, y, np.cross(x, y)], 1), length

    def limb(self, a, b, radius, material, rgb):
        """A cylinder from point a to point b (object frame)."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        axes, length = self._along(a, b)
        self.add(CYLINDER, (a + b) / 2, (radius, length / 2, radius), material, rgb, axes)

    def trunk(self, a, b, depth, width, material, rgb, overhang=0.06):
        """An ellipsoid from point a to point b (a torso: ``depth`` along x, ``width`` along z)."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        axes, length = self._along(a, b)
        self.add(ELLIPSOID, (a + b) / 2, (depth, length / 2 + overhang, width), material, rgb, axes)

    def wheel(self, x, z, radius, thickness, material, rgb):
        self.add(CYLINDER, (x, -radius, z), (radius, thickness / 2, radius), material, rgb, AXLE)

    def finish(self, rng) -> Tuple[Parts, np.ndarray]:
        """Parts relative to the label box centre, and the label size lhw (rounded up)."""
        shape = np.array([p[0] for p in self.prims], np.int8)
        centre = np.array([p[1] for p in self.prims])
        half = np.array([p[2] for p in self.prims])
        axes = np.array([p[5] for p in self.prims])
        reach = np.where((shape == ELLIPSOID)[:, None],
                         np.sqrt(np.einsum('nij,nj->ni', axes ** 2, half ** 2)),
                         np.einsum('nij,nj->ni', np.abs(axes), half))  # (n, 3) half AABB
        lo, hi = (centre - reach).min(0), (centre + reach).max(0)
        shift = np.array([(lo[0] + hi[0]) / 2, hi[1], (lo[2] + hi[2]) / 2])  # bottom centre
        extent = hi - lo
        lhw = np.ceil((extent + LABEL_PAD * np.array([2, 1, 2])) * 100 - 1e-6) / 100
        centre = centre - shift + np.array([0.0, lhw[1] / 2, 0.0])  # relative to the box centre
        cache = {}
        refl = []
        for p in self.prims:  # one draw per (material, colour) of an object
            key = (p[3], p[4].tobytes())
            if key not in cache:
                cache[key] = reflectance_of(p[3], p[4], rng)
            refl.append(cache[key])
        parts = Parts(shape, centre, axes, half, np.array([MATERIAL_ID[p[3]] for p in self.prims], np.int8),
                      np.array([p[4] for p in self.prims], np.float32), np.array(refl, np.float32))
        return parts, lhw


def _one_of(rng, options):
    return options[rng.integers(len(options))]


def _size(rng, kind):
    return np.array([np.clip(rng.normal(m, s), lo, hi) for m, s, lo, hi in SIZE_STATS[kind]])


def _paint(rng):
    return jitter(rng, pick(rng, CAR_PAINTS, CAR_PAINT_WEIGHTS), spread=8)


GLASS_RGB = (40, 48, 58)
CARGO_RGB = [(225, 225, 225), (160, 165, 170), (60, 90, 150), (150, 40, 35)]
HELMET_RGB = [(230, 230, 230), (200, 30, 30), (20, 20, 20), (30, 60, 160)]
CART_RGB = [(170, 170, 175), (200, 120, 40), (60, 110, 60), (140, 95, 50)]
MACHINE_RGB = [(60, 90, 150), (140, 140, 145)]  # parking-ticket machines
SIGN_RGB = [(200, 30, 30), (30, 70, 170), (230, 230, 230), (230, 190, 30)]
CONTAINER_RGB = [(120, 70, 40), (40, 80, 50), (50, 70, 120), (170, 140, 40), (90, 90, 90)]  # rust, green, ...
TYRE_RGB = (28, 28, 30)
SEAT_RGB = (45, 42, 40)


def build_car(b: _Builder, rng):
    L, H, W = _size(rng, 'car') - LABEL_PAD * np.array([2, 1, 2])
    paint = _paint(rng)
    clear, r = rng.uniform(0.14, 0.2), rng.uniform(0.29, 0.33)
    belt = H * rng.uniform(0.55, 0.62)
    bonnet = L * rng.uniform(0.26, 0.33)
    hatchback = rng.random() < 0.4
    boot = L * (rng.uniform(0.03, 0.08) if hatchback else rng.uniform(0.14, 0.22))
    b.box((-L / 2, -belt, -W / 2), (L / 2, -clear, W / 2), 'paint', paint)  # bonnet, doors, boot
    for x in (-L / 2 + 0.75, L / 2 - 0.8):
        for z in (-W / 2 + 0.12, W / 2 - 0.12):
            b.wheel(x, z, r, 0.2, 'rubber', TYRE_RGB)
    x0, x1 = -L / 2 + boot, L / 2 - bonnet
    b.box((x0, -H + 0.05, -W / 2 + 0.07), (x1, -belt, W / 2 - 0.07), 'glass', GLASS_RGB)
    b.box((x0 + 0.12, -H, -W / 2 + 0.1), (x1 - 0.18, -H + 0.05, W / 2 - 0.1), 'paint', paint)  # roof
    b.box((x0 + 0.2, -belt - 0.4, -W / 2 + 0.22), (x1 - 0.35, -belt + 0.02, W / 2 - 0.22), 'fabric', SEAT_RGB)


def build_van(b: _Builder, rng):
    L, H, W = _size(rng, 'van') - LABEL_PAD * np.array([2, 1, 2])
    paint = _paint(rng) if rng.random() < 0.6 else jitter(rng, (228, 228, 228), spread=5)
    clear, r, belt = rng.uniform(0.17, 0.22), rng.uniform(0.32, 0.36), rng.uniform(0.95, 1.1)
    bonnet = rng.uniform(0.5, 0.9)
    b.box((-L / 2, -belt, -W / 2), (L / 2, -clear, W / 2), 'paint', paint)
    for x in (-L / 2 + 0.8, L / 2 - 0.9):
        for z in (-W / 2 + 0.13, W / 2 - 0.13):
            b.wheel(x, z, r, 0.22, 'rubber', TYRE_RGB)
    cab0 = L / 2 - bonnet - 1.0
    b.box((cab0, -H + 0.08, -W / 2 + 0.06), (L / 2 - bonnet, -belt, W / 2 - 0.06), 'glass', GLASS_RGB)
    b.box((cab0 + 0.2, -belt - 0.45, -W / 2 + 0.25), (L / 2 - bonnet - 0.3, -belt + 0.02, W / 2 - 0.25),
          'fabric', SEAT_RGB)
    b.box((-L / 2, -H, -W / 2), (cab0, -belt, W / 2), 'paint', paint)  # windowless cargo body
    b.box((cab0, -H, -W / 2 + 0.08), (L / 2 - bonnet - 0.1, -H + 0.08, W / 2 - 0.08), 'paint', paint)


def build_truck(b: _Builder, rng):
    L, H, W = _size(rng, 'truck') - LABEL_PAD * np.array([2, 1, 2])
    cab = jitter(rng, pick(rng, CAR_PAINTS), spread=8)
    cargo = jitter(rng, _one_of(rng, CARGO_RGB), spread=6)
    r = rng.uniform(0.45, 0.52)
    cab_len = rng.uniform(1.9, 2.4)
    b.box((L / 2 - cab_len, -1.7, -W / 2), (L / 2, -0.5, W / 2), 'paint', cab)
    b.box((L / 2 - cab_len + 0.3, -2.55, -W / 2 + 0.05), (L / 2 - 0.05, -1.7, W / 2 - 0.05), 'glass',
          GLASS_RGB)
    b.box((L / 2 - cab_len, -2.85, -W / 2), (L / 2 - 0.1, -2.55, W / 2), 'paint', cab)
    b.box((L / 2 - cab_len + 0.5, -2.2, -W / 2 + 0.3), (L / 2 - 0.4, -1.65, W / 2 - 0.3), 'fabric', SEAT_RGB)
    cargo_material = 'metal' if rng.random() < 0.4 else 'paint'
    b.box((-L / 2, -H, -W / 2), (L / 2 - cab_len - 0.2, -1.15, W / 2), cargo_material, cargo)
    chassis = (-L / 2 + 0.5, -1.15, -W / 2 + 0.35), (L / 2 - 0.3, -0.6, W / 2 - 0.35)
    b.box(*chassis, 'metal', (50, 50, 52))
    for x in (-L / 2 + 1.2, -L / 2 + 2.3, L / 2 - 1.1):
        for z in (-W / 2 + 0.2, W / 2 - 0.2):
            b.wheel(x, z, r, 0.35, 'rubber', TYRE_RGB)


def _clothes(rng):
    return jitter(rng, pick(rng, CLOTHES, CLOTHES_WEIGHTS), spread=8)


def _person(b: _Builder, rng, height, hip_xy=None, legs='walk', arms='swing'):
    """Head, torso, two arms and two legs; a walking phase drawn per person."""
    skin = jitter(rng, pick(rng, SKIN_TONES), spread=6)
    top, trousers = _clothes(rng), _clothes(rng)
    sleeves = ('skin', skin) if rng.random() < 0.3 else ('fabric', top)
    hip_h = 0.52 * height
    stride = rng.uniform(0.0, 0.38)  # half-angle between the legs (0: standing)
    lean = rng.normal(0, 0.05)
    hip = np.array([0.0, -hip_h, 0.0]) if hip_xy is None else np.array([hip_xy[0], hip_xy[1], 0.0])
    body_len = height - hip_h
    sx, sy = hip[0] + np.sin(lean) * (body_len - 0.3), hip[1] - np.cos(lean) * (body_len - 0.3)
    shoulder = np.array([sx, sy, 0.0])
    b.trunk(hip, shoulder, rng.uniform(0.11, 0.15), rng.uniform(0.17, 0.22), 'fabric', top)
    head = shoulder + np.array([np.sin(lean) * 0.2, -0.2, 0.0])
    b.add(ELLIPSOID, head, (0.1, 0.12, 0.085), 'skin', skin)
    if legs == 'walk':
        for side, angle in ((-1, stride), (1, -stride)):
            foot = np.array([hip[0] + hip_h * np.tan(angle), -0.05, 0.1 * side])
            b.limb(hip + [0, 0, 0.1 * side], foot, rng.uniform(0.065, 0.08), 'fabric', trousers)
    else:  # sitting: thighs forward, shins down
        for side in (-1, 1):
            knee = hip + np.array([0.42, 0.0, 0.12 * side])
            b.limb(hip + [0, 0, 0.1 * side], knee, 0.075, 'fabric', trousers)
            b.limb(knee, np.array([knee[0] + 0.05, -0.05, knee[2]]), 0.06, 'fabric', trousers)
    arm_len = 0.34 * height
    for side in (-1, 1):
        root = shoulder + np.array([0, 0.06, 0.2 * side])
        if arms == 'swing':
            angle = side * stride * 0.9 + rng.normal(0, 0.1)
            hand = root + arm_len * np.array([np.sin(angle), np.cos(angle), 0.06 * side])
        else:  # on the lap
            hand = root + np.array([0.35, 0.35, 0.0])
        b.limb(root, hand, 0.045, *sleeves)
    return hip, shoulder


def build_pedestrian(b: _Builder, rng, height=None):
    height = np.clip(rng.normal(1.76, 0.11), 1.45, 2.0) - LABEL_PAD[1] if height is None else height
    _person(b, rng, height)
    if rng.random() < 0.2:  # a bag or a backpack
        b.box((-0.33, -1.0, 0.18), (-0.05, -0.65, 0.3), 'fabric', _clothes(rng))


def build_person_sitting(b: _Builder, rng):
    seat_h = rng.uniform(0.42, 0.5)
    b.box((-0.25, -seat_h, -0.25), (0.25, -seat_h + 0.06, 0.25), 'wood' if rng.random() < 0.5 else 'metal',
          jitter(rng, (120, 90, 60), spread=15))
    b.limb((0.0, -seat_h + 0.06, 0.0), (0.0, 0.0, 0.0), 0.03, 'metal', (80, 80, 85))
    _person(b, rng, rng.uniform(1.6, 1.85), hip_xy=(0.0, -seat_h - 0.08), legs='sit', arms='lap')


def _bike(b: _Builder, rng, frame_rgb):
    r = rng.uniform(0.32, 0.36)
    wheelbase = rng.uniform(1.0, 1.1)
    rear, front = np.array([-wheelbase / 2, -r, 0]), np.array([wheelbase / 2, -r, 0])
    for x in (rear[0], front[0]):
        b.wheel(x, 0.0, r, 0.05, 'spokes', TYRE_RGB)
    bracket = np.array([-0.02, -0.3, 0])
    seat = np.array([-0.2, -0.85 - 0.1 * rng.random(), 0])
    head = np.array([wheelbase / 2 - 0.12, -0.92, 0])
    for a, c in ((bracket, seat), (seat, head), (bracket, head), (head, front), (rear, bracket)):
        b.limb(a, c, 0.022, 'metal', frame_rgb)
    b.box(head + [-0.05, -0.12, -0.28], head + [0.05, -0.08, 0.28], 'metal', (40, 40, 42))  # handlebar
    b.box(seat + [-0.12, -0.06, -0.08], seat + [0.1, 0.0, 0.08], 'plastic', (25, 25, 25))  # saddle
    return seat, head, bracket


def build_cyclist(b: _Builder, rng):
    seat, head_tube, bracket = _bike(b, rng, jitter(rng, pick(rng, CAR_PAINTS), spread=10))
    top, trousers = _clothes(rng), _clothes(rng)
    skin = jitter(rng, pick(rng, SKIN_TONES), spread=6)
    hip = seat + np.array([0.02, -0.08, 0.0])
    lean = rng.uniform(0.45, 0.85)  # torso from the vertical, forwards
    torso_len = rng.uniform(0.55, 0.65)
    shoulder = hip + torso_len * np.array([np.sin(lean), -np.cos(lean), 0])
    b.trunk(hip, shoulder, 0.13, 0.19, 'fabric', top, overhang=0.05)
    helmet = shoulder + np.array([0.1, -0.14, 0])
    helmet_rgb = jitter(rng, _one_of(rng, HELMET_RGB), spread=8)
    b.add(ELLIPSOID, helmet, (0.14, 0.12, 0.11), 'plastic', helmet_rgb)
    crank = rng.uniform(0, 2 * np.pi)
    for side, phase in ((-1, 0.0), (1, np.pi)):
        pedal = bracket + np.array([0.17 * np.cos(crank + phase), 0.17 * np.sin(crank + phase), 0.14 * side])
        h = hip + [0, 0, 0.1 * side]
        reach = np.linalg.norm(pedal - h)
        thigh = 0.45
        knee_dir = np.array([1.0, 0.0, 0.0]) * np.sqrt(max(thigh ** 2 - (reach / 2) ** 2, 0.01))
        knee = (h + pedal) / 2 + knee_dir
        b.limb(h, knee, 0.07, 'fabric', trousers)
        b.limb(knee, pedal, 0.055, 'fabric', trousers if rng.random() < 0.8 else skin)
    for side in (-1, 1):
        b.limb(shoulder + [0, 0.04, 0.19 * side], head_tube + [0, -0.12, 0.24 * side], 0.045,
               'skin' if rng.random() < 0.3 else 'fabric', top)


def build_misc(b: _Builder, rng):
    """A hand cart / trolley (KITTI's Misc holds such odd wheeled things)."""
    L, H, W = rng.uniform(0.9, 1.8), rng.uniform(0.8, 1.3), rng.uniform(0.6, 1.0)
    b.box((-L / 2, -H, -W / 2), (L / 2, -0.25, W / 2), ['metal', 'plastic', 'wood'][rng.integers(3)],
          jitter(rng, _one_of(rng, CART_RGB), spread=12))
    for z in (-W / 2, W / 2):
        b.wheel(-L / 4, z, 0.13, 0.06, 'rubber', TYRE_RGB)
    b.limb((L / 2, -0.8, 0), (L / 2 + 0.35, -1.1, 0), 0.02, 'metal', (90, 90, 95))


# look-alikes: pedestrian / cyclist sized
def build_bollard(b, rng):
    h, r = rng.uniform(0.8, 1.4), rng.uniform(0.08, 0.16)
    mat = ['metal', 'concrete', 'plastic'][rng.integers(3)]
    rgb = jitter(rng, _one_of(rng, [(130, 130, 135), (190, 185, 175), (200, 60, 40)]))
    b.add(CYLINDER, (0, -h / 2, 0), (r, h / 2, r), mat, rgb)


def build_bin(b, rng):
    h, w = rng.uniform(0.9, 1.5), rng.uniform(0.5, 0.75)  # wheelie bins to litter bins on a post
    rgb = jitter(rng, _one_of(rng, [(40, 90, 50), (70, 75, 80), (25, 25, 28), (210, 110, 30), (60, 80, 140)]))
    if rng.random() < 0.5:
        b.box((-w / 2, -h, -w / 2), (w / 2, 0, w / 2), 'plastic', rgb)
    else:
        b.add(CYLINDER, (0, -h / 2, 0), (w / 2, h / 2, w / 2), 'plastic', rgb)


def build_sign_post(b, rng):
    """A traffic sign on a pole, or a parking-ticket machine (a person-sized metal post)."""
    if rng.random() < 0.4:
        h = rng.uniform(1.3, 1.75)
        b.add(CYLINDER, (0, -0.35, 0), (0.06, 0.35, 0.06), 'metal', (110, 110, 115))
        b.box((-0.15, -h, -0.2), (0.15, -0.7, 0.2), 'metal', jitter(rng, _one_of(rng, MACHINE_RGB)))
        return
    h = rng.uniform(2.2, 2.9)
    b.add(CYLINDER, (0, -h / 2, 0), (0.035, h / 2, 0.035), 'metal', (140, 140, 145))
    plate = jitter(rng, _one_of(rng, SIGN_RGB), spread=6)
    b.box((-0.015, -h - 0.3, -0.32), (0.015, -h + 0.3, 0.32), 'retro', plate)


def build_tree(b, rng):
    r, h = rng.uniform(0.12, 0.3), rng.uniform(2.5, 4.0)
    b.add(CYLINDER, (0, -h / 2, 0), (r, h / 2, r), 'bark', jitter(rng, (85, 65, 45), spread=10))
    crown = rng.uniform(1.0, 2.0)
    b.add(ELLIPSOID, (0, -h - crown * 0.8, 0), (crown, crown * 1.1, crown), 'foliage',
          jitter(rng, (55, 95, 40), spread=12))


def build_board(b, rng):
    """A standing advertising board (A-frame) or a poster panel on two legs."""
    rgb = jitter(rng, _one_of(rng, [(230, 230, 225), (200, 40, 40), (30, 30, 35), (240, 200, 40)]), spread=10)
    if rng.random() < 0.5:
        h, w = rng.uniform(1.0, 1.5), rng.uniform(0.5, 0.7)
        for sign in (-1, 1):
            tilt = np.array([[np.cos(0.2 * sign), -np.sin(0.2 * sign), 0],
                             [np.sin(0.2 * sign), np.cos(0.2 * sign), 0], [0, 0, 1]])
            b.add(BOX, (sign * 0.1, -h / 2, 0), (0.015, h / 2, w / 2), 'plastic', rgb, tilt)
    else:
        h, w = rng.uniform(1.5, 1.9), rng.uniform(0.8, 1.2)
        b.box((-0.04, -h, -w / 2), (0.04, -0.4, w / 2), 'plastic', rgb)
        for z in (-w / 2 + 0.05, w / 2 - 0.05):
            b.limb((0, -0.4, z), (0, 0, z), 0.025, 'metal', (120, 120, 125))


def build_parked_bicycle(b, rng):
    _bike(b, rng, jitter(rng, pick(rng, CAR_PAINTS), spread=10))


# look-alikes: car sized
def build_hedge(b, rng):
    L, H, W = rng.uniform(2.5, 5.5), rng.uniform(0.9, 1.8), rng.uniform(0.7, 1.3)
    b.box((-L / 2, -H, -W / 2), (L / 2, 0, W / 2), 'foliage', jitter(rng, (50, 90, 40), spread=12))


def build_container(b, rng):
    L, H, W = rng.uniform(1.8, 3.8), rng.uniform(1.2, 1.9), rng.uniform(1.3, 1.8)
    b.box((-L / 2, -H, -W / 2), (L / 2, -0.08, W / 2), 'metal',
          jitter(rng, _one_of(rng, CONTAINER_RGB), spread=12))
    b.box((-L / 2 + 0.1, -0.08, -W / 2 + 0.1), (L / 2 - 0.1, 0, W / 2 - 0.1), 'metal', (40, 40, 40))


def build_trailer(b, rng):
    L, H, W = rng.uniform(2.0, 3.5), rng.uniform(0.9, 1.7), rng.uniform(1.3, 1.8)
    rgb = jitter(rng, _one_of(rng, [(170, 170, 175), (225, 225, 225), (40, 40, 42), (60, 90, 60)]), spread=8)
    material = 'plastic' if rng.random() < 0.5 else 'metal'
    b.box((-L / 2, -0.45 - H, -W / 2), (L / 2, -0.45, W / 2), material, rgb)
    for z in (-W / 2 - 0.05, W / 2 + 0.05):
        b.wheel(0.0, z, 0.3, 0.16, 'rubber', TYRE_RGB)
    b.limb((L / 2, -0.5, 0), (L / 2 + 1.0, -0.5, 0), 0.04, 'metal', (60, 60, 62))


def build_bush(b, rng):
    """A low bush at the kerb: hides legs and wheels from the camera, porous to the LiDAR."""
    r = rng.uniform(0.5, 1.0)
    b.add(ELLIPSOID, (0, -r * 0.9, 0), (r, r * 0.9, r * rng.uniform(0.6, 1.0)), 'foliage',
          jitter(rng, (60, 100, 45), spread=14))


def build_wall(b, rng):
    L, H, W = rng.uniform(8, 30), rng.uniform(1.5, 3.5), rng.uniform(0.3, 0.5)
    b.box((-L / 2, -H, -W / 2), (L / 2, 0, W / 2), 'concrete', jitter(rng, (150, 140, 125), spread=15))


BUILDERS = {
    'car': build_car, 'van': build_van, 'truck': build_truck, 'pedestrian': build_pedestrian,
    'person_sitting': build_person_sitting, 'cyclist': build_cyclist, 'misc': build_misc,
    'bollard': build_bollard, 'bin': build_bin, 'sign_post': build_sign_post, 'tree': build_tree,
    'board': build_board, 'parked_bicycle': build_parked_bicycle, 'hedge': build_hedge,
    'container': build_container, 'trailer': build_trailer, 'bush': build_bush, 'wall': build_wall,
}
KITTI_NAME = {'car': 'Car', 'van': 'Van', 'truck': 'Truck', 'pedestrian': 'Pedestrian',
              'person_sitting': 'Person_sitting', 'cyclist': 'Cyclist', 'misc': 'Misc'}
PEDESTRIAN_SIZED = ('bollard', 'bin', 'sign_post', 'tree', 'board', 'parked_bicycle')
CAR_SIZED = ('hedge', 'container', 'trailer')
LOOKALIKES = PEDESTRIAN_SIZED + CAR_SIZED


# --------------------------------------------------------------------------------------------
# placement
# --------------------------------------------------------------------------------------------
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


def _wrap_round(angle):
    angle = (angle + np.pi) % (2 * np.pi) - np.pi
    return float(np.clip(np.round(angle, 2), -3.14, 3.14))


class _World:
    """Builds objects and places them without bird's-eye overlap."""

    def __init__(self, rng, scene):
        self.rng = rng
        self.scene = scene
        self.footprints = [bev_corners(*EGO_BEV)]

    def add(self, kind, sample_xz, yaw, label='auto', margin=BEV_MARGIN, tries=20, on=None):
        """Build a ``kind`` object and put it at the first sampled spot that is free (and, with
        ``on`` = 'road' / 'pavement', entirely on that surface). Returns it or None."""
        b = _Builder(self.rng)
        BUILDERS[kind](b, self.rng)
        parts, lhw = b.finish(self.rng)
        ry = _wrap_round(yaw() if callable(yaw) else yaw)
        g = self.scene.ground
        for _ in range(tries):
            x, z = np.round(sample_xz(), 2)
            rect = bev_corners(x, z, lhw[0], lhw[2], ry)
            if on is not None:
                off = (rect[:, 0] <= g.left_edge + 0.05) | (rect[:, 0] >= g.right_edge - 0.05)
                if (on == 'road' and off.any()) or (on == 'pavement' and not off.all()):
                    continue
            grown = bev_corners(x, z, lhw[0] + 2 * margin, lhw[2] + 2 * margin, ry)
            if bev_overlaps(grown, np.array(self.footprints)):
                continue
            self.footprints.append(rect if margin < BEV_MARGIN else grown)
            y = round(float(g.height_at(x, z)), 2)
            name = KITTI_NAME.get(kind) if label == 'auto' else label
            obj = SceneObject(kind, name, np.array([x, y, z]), lhw, ry, parts)
            self.scene.objects.append(obj)
            return obj
        return None


def _along(rng, noise=0.05):
    return rng.choice([-np.pi / 2, np.pi / 2]) + rng.normal(0, noise)


def sample_scene(rng: np.random.Generator) -> Scene:
    """One random street scene (see the module docstring)."""
    left, right = -rng.uniform(3.5, 9.0), rng.uniform(2.5, 7.0)
    lanes = tuple(x for x in np.arange(np.ceil(left / 3.5) * 3.5, right, 3.5) if left + 1.5 < x < right - 1.5)
    ground = Ground(
        # slope up to ~0.5 deg across and 0.3 deg along, changing by up to 0.4 % over 70 m:
        # at most ~0.55 m at 75 m, inside mmdet3d's KITTI z range (-3..1 m)
        y0=CAMERA_HEIGHT + rng.normal(0, 0.03), slope_x=float(np.clip(rng.normal(0, 0.004), -0.008, 0.008)),
        slope_z=float(np.clip(rng.normal(0, 0.003), -0.005, 0.005)),
        curve_z=float(np.clip(rng.normal(0, 1.5e-5), -3e-5, 3e-5)),
        left_edge=float(left), right_edge=float(right), kerb_height=float(rng.uniform(0.1, 0.16)),
        pavement_width=float(rng.uniform(2.5, 5.0)), lane_lines=lanes, salt=int(rng.integers(1 << 30)),
        asphalt_rgb=(np.array([92, 92, 98]) * rng.uniform(0.8, 1.2)).astype(np.float32),
        pavement_rgb=(np.array([150, 145, 140]) * rng.uniform(0.85, 1.1)).astype(np.float32),
        grass_rgb=np.array([95, 115, 60], np.float32) * rng.uniform(0.8, 1.1))
    sun = np.array([rng.uniform(-0.7, 0.7), -1.0, rng.uniform(-0.9, 0.3)])
    scene = Scene(ground=ground, light_dir=sun / np.linalg.norm(sun),
                  sun=float(rng.choice([0.25, 1.0], p=[0.3, 0.7])),  # overcast or sunny
                  sky_top_rgb=np.array([95, 145, 215], np.float32) * rng.uniform(0.8, 1.1),
                  sky_horizon_rgb=np.array([200, 212, 228], np.float32) * rng.uniform(0.85, 1.05),
                  exposure=float(np.exp(rng.normal(0, 0.2))),
                  white_balance=np.exp(rng.normal(0, 0.06, 3)).astype(np.float32))
    w = _World(rng, scene)
    g = ground
    edges = (g.left_edge, g.right_edge)

    def pavement(side, z_lo=3.0, z_hi=55.0, inset=0.5):
        def sample():
            edge = edges[int(side > 0)]
            return edge + side * rng.uniform(inset, g.pavement_width - inset), rng.uniform(z_lo, z_hi)
        return sample

    def kerbside(side, z_lo=-30.0, z_hi=60.0):  # a strip on the pavement just behind the kerb
        return lambda: (edges[int(side > 0)] + side * rng.uniform(0.3, 0.8), rng.uniform(z_lo, z_hi))

    def lane(z_lo=6.0, z_hi=70.0):
        return lambda: (rng.uniform(g.left_edge + 1.4, g.right_edge - 1.4), rng.uniform(z_lo, z_hi))

    # walls / buildings behind the pavements, never labelled
    for side in (-1, 1):
        if rng.random() < 0.6:
            w.add('wall', lambda s=side: (edges[int(s > 0)] + s * (g.pavement_width + 0.5), rng.uniform(0, 50)),
                  np.pi / 2 + rng.normal(0, 0.02), label=None, margin=0.05)
    # parked cars in rows along the kerb, less than a metre apart (KITTI's residential streets)
    for side in (-1, 1):
        if rng.random() < 0.4:
            _parked_row(w, rng, side)
    # traffic in the lanes
    for kind, count in (('car', rng.poisson(1.5)), ('van', rng.poisson(0.25)), ('truck', rng.poisson(0.12))):
        for _ in range(count):
            w.add(kind, lane(), _along(rng), on='road')
    # pedestrians: mostly on the pavements (raised by the kerb), in small groups; a few crossing
    for _ in range(rng.poisson(0.55)):
        side = rng.choice([-1, 1])
        x0, z0 = pavement(side, 4.0, 45.0)()
        for _ in range(1 + rng.poisson(0.7)):
            w.add('pedestrian', lambda: (x0 + rng.normal(0, 0.5), z0 + rng.normal(0, 1.5)),
                  rng.uniform(-np.pi, np.pi) if rng.random() < 0.4 else _along(rng, 0.3), margin=0.05)
    if rng.random() < 0.12:
        w.add('pedestrian', lane(6.0, 40.0), rng.choice([0.0, np.pi]) + rng.normal(0, 0.3), on='road')
    for _ in range(rng.poisson(0.06)):
        w.add('person_sitting', pavement(rng.choice([-1, 1]), 4.0, 35.0), rng.uniform(-np.pi, np.pi),
              on='pavement')
    # cyclists at the road's edge (or on the pavement)
    for _ in range(rng.poisson(0.4)):
        side = rng.choice([-1, 1])
        if rng.random() < 0.75:
            sample = (lambda s=side: (edges[int(s > 0)] - s * rng.uniform(0.6, 1.6), rng.uniform(5.0, 50.0)))
            w.add('cyclist', sample, _along(rng, 0.15), on='road')
        else:
            w.add('cyclist', pavement(side, 5.0, 45.0), _along(rng, 0.3), on='pavement')
    for _ in range(rng.poisson(0.15)):
        w.add('misc', pavement(rng.choice([-1, 1]), 4.0, 40.0), rng.uniform(-np.pi, np.pi), on='pavement')
    # look-alikes, unlabelled: street furniture on the pavements, car-sized things at the kerb
    for _ in range(rng.poisson(3.0)):
        kind = PEDESTRIAN_SIZED[rng.integers(len(PEDESTRIAN_SIZED))]
        side = rng.choice([-1, 1])
        spot = kerbside(side) if kind in ('bollard', 'sign_post', 'tree') else pavement(side, -25.0, 55.0)
        # a tree's crown may overhang the road (its trunk stands on the pavement)
        w.add(kind, spot, rng.uniform(-np.pi, np.pi) if kind != 'parked_bicycle' else _along(rng, 0.6),
              label=None, margin=0.05 if kind == 'tree' else 0.1, on=None if kind == 'tree' else 'pavement')
    for _ in range(rng.poisson(1.0)):
        kind = CAR_SIZED[rng.integers(len(CAR_SIZED))]
        side = rng.choice([-1, 1])
        if kind == 'hedge':
            w.add(kind, pavement(side, -20.0, 55.0, inset=0.7), np.pi / 2 + rng.normal(0, 0.05),
                  label=None, margin=0.1, on='pavement')
        else:
            w.add(kind, lambda s=side: (edges[int(s > 0)] - s * rng.uniform(1.0, 1.4), rng.uniform(-20.0, 60.0)),
                  _along(rng), label=None, on='road')
    # bushes at the kerb: partial occluders of what stands behind them
    for _ in range(rng.poisson(1.2)):
        w.add('bush', kerbside(rng.choice([-1, 1]), 3.0, 40.0), 0.0, label=None, margin=0.05, on='pavement')
    # traffic behind us: the LiDAR sees 360 degrees, the camera does not (not labelled)
    for _ in range(rng.poisson(1.5)):
        w.add('car', lambda: (rng.uniform(g.left_edge + 1.2, g.right_edge - 1.2), rng.uniform(-40, -6)),
              _along(rng), label=None, on='road')
    # too far for KITTI's annotators: DontCare regions
    for _ in range(rng.poisson(2.0)):
        w.add(['car', 'car', 'van', 'pedestrian'][rng.integers(4)],
              lambda: (rng.uniform(-25, 25), rng.uniform(72, 100)), _along(rng, 0.3), label='DontCare')
    return scene


def _parked_row(w: _World, rng, side):
    """Cars parked nose to tail along one kerb, 0.3-1.0 m between their label boxes."""
    g = w.scene.ground
    edge = (g.left_edge, g.right_edge)[int(side > 0)]
    z = rng.uniform(-15.0, 20.0)
    z_end = z + rng.uniform(15.0, 45.0)
    while z < z_end:
        kind = 'van' if rng.random() < 0.1 else 'car'
        b = _Builder(rng)
        BUILDERS[kind](b, rng)
        parts, lhw = b.finish(rng)
        if rng.random() < 0.2:  # an empty bay
            z += lhw[0] + rng.uniform(0.3, 1.0)
            continue
        x = round(edge - side * (lhw[2] / 2 + rng.uniform(0.15, 0.4)), 2)
        zc = round(z + lhw[0] / 2, 2)
        ry = _wrap_round(rng.choice([-np.pi / 2, np.pi / 2]) + rng.normal(0, 0.02))
        rect = bev_corners(x, zc, lhw[0], lhw[2], ry)
        if not bev_overlaps(rect, np.array(w.footprints)):
            w.footprints.append(rect)
            y = round(float(g.height_at(x, zc)), 2)
            w.scene.objects.append(SceneObject(kind, KITTI_NAME[kind], np.array([x, y, zc]), lhw, ry, parts))
        z += lhw[0] + rng.uniform(0.3, 1.0)
