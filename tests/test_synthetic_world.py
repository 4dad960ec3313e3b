"""The synthetic world's properties (docs/synthetic-world.md), each checked so that the test
fails if the generator lost it: look-alikes, material reflectance, dark paint, porous
foliage, kerbs, composite shapes inside their label boxes, KITTI-like label rates."""
import dataclasses

import numpy as np
import pytest

from gemini_det3d.data import kitti_io
from gemini_det3d.data.camera_render import render_camera
from gemini_det3d.data.lidar_scan import simulate_lidar
from gemini_det3d.data.synthetic_appearance import MATERIAL_ID, reflectance_of
from gemini_det3d.data.synthetic_calib import sample_kitti_calib
from gemini_det3d.data.synthetic_kitti import generate_frame
from gemini_det3d.data.synthetic_scene import (BUILDERS, CAR_SIZED, KITTI_NAME, PEDESTRIAN_SIZED,
                                               Ground, Scene, SceneObject, _Builder, sample_scene)

SEED = 3
KITTI_PER_FRAME = {'Car': 28742 / 7481, 'Van': 2914 / 7481, 'Truck': 1094 / 7481,
                   'Pedestrian': 4487 / 7481, 'Cyclist': 1627 / 7481}


@pytest.fixture(scope='module')
def frames():
    return [generate_frame(SEED, 'training', i) for i in range(6)]


@pytest.fixture(scope='module')
def scenes():
    return [sample_scene(np.random.default_rng([SEED, i])) for i in range(300)]


def _cam_points(frame):
    pts = frame['points']
    hom = np.concatenate([pts[:, :3], np.ones((len(pts), 1))], 1)
    return (hom @ kitti_io.lidar2cam(frame['calib']).T)[:, :3]


def _inside_box(cam, bottom_center, lhw, rotation_y):
    c, s = np.cos(rotation_y), np.sin(rotation_y)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    local = (cam - (np.asarray(bottom_center) - [0, lhw[1] / 2, 0])) @ rot
    return (np.abs(local) <= np.asarray(lhw) / 2).all(1)


def _on_object(cam, obj, ground, margin=0.04, clear=0.05):
    above = ground.height_at(cam[:, 0], cam[:, 2]) - cam[:, 1] >= clear
    return obj.near_surface(cam, margin) & above


def _ks(a, b):
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side='right') / len(a)
    fb = np.searchsorted(np.sort(b), grid, side='right') / len(b)
    return np.abs(fa - fb).max()


def test_lookalikes_are_present_unlabelled_and_sized_like_the_labelled_classes(frames, scenes):
    kinds = [o.kind for s in scenes for o in s.objects]
    for kind in PEDESTRIAN_SIZED + CAR_SIZED:
        assert kinds.count(kind) >= 10, kind
    assert all(o.label is None for s in scenes for o in s.objects if o.kind in PEDESTRIAN_SIZED + CAR_SIZED)
    # their LiDAR geometry overlaps the labelled classes' (label-box sizes of what the LiDAR sees)
    def sizes(kinds_, label=None):
        return np.array([o.lhw for s in scenes for o in s.objects if o.kind in kinds_ and o.label == label])
    ped, car = sizes(('pedestrian',), 'Pedestrian'), sizes(('car',), 'Car')
    small, big = sizes(PEDESTRIAN_SIZED), sizes(CAR_SIZED)
    ped_like = ((small[:, 1] > ped[:, 1].min()) & (small[:, 1] < ped[:, 1].max()) &
                (small[:, [0, 2]].max(1) < ped[:, [0, 2]].max()))
    car_like = ((big[:, 0] > car[:, 0].min()) & (big[:, 0] < car[:, 0].max()) &
                (big[:, 1] > car[:, 1].min()) & (big[:, 1] < car[:, 1].max()))
    # (sign posts and trees are taller, bollards shorter: a share of them is person-sized)
    assert ped_like.mean() > 0.1 and car_like.mean() > 0.15, (ped_like.mean(), car_like.mean())
    # no label box of the frame holds a look-alike's points (KITTI leaves them unlabelled)
    checked = 0
    for frame in frames:
        cam = _cam_points(frame)
        boxes = [l for l in frame['labels'] if l['type'] != 'DontCare']
        for obj in frame['scene'].objects:
            if obj.kind not in PEDESTRIAN_SIZED + CAR_SIZED:
                continue
            mine = _on_object(cam, obj, frame['scene'].ground)
            if mine.sum() < 10:
                continue
            checked += 1
            for lab in boxes:
                h, w, l = lab['hwl']
                assert _inside_box(cam[mine], lab['location'], (l, h, w), lab['rotation_y']).mean() < 0.5
    assert checked >= 5


def test_reflectance_follows_the_material_not_the_class(scenes):
    """The same material draws from the same reflectance distribution on every class; the
    darkness law makes black paint far weaker than white (the check's positive control)."""
    by = {}
    for s in scenes:
        for o in s.objects:
            for mat, refl in zip(o.parts.material, o.parts.reflectance):
                by.setdefault((int(mat), o.kind), []).append(refl)
    pairs = [('skin', 'pedestrian', 'cyclist'), ('rubber', 'car', 'trailer'), ('rubber', 'car', 'van'),
             ('metal', 'sign_post', 'cyclist'), ('foliage', 'hedge', 'tree')]
    for mat, a, b in pairs:
        ra, rb = np.array(by[(MATERIAL_ID[mat], a)]), np.array(by[(MATERIAL_ID[mat], b)])
        assert len(ra) >= 30 and len(rb) >= 30, (mat, a, b)
        assert abs(ra.mean() - rb.mean()) < 0.03 and _ks(ra, rb) < 0.3, (mat, a, b, ra.mean(), rb.mean())
    rng = np.random.default_rng(0)
    white = [reflectance_of('paint', (225, 225, 225), rng) for _ in range(200)]
    black = [reflectance_of('paint', (30, 30, 34), rng) for _ in range(200)]
    assert np.mean(white) > 0.35 and np.mean(black) < 0.08


def _flat_scene(objects):
    ground = Ground(y0=1.65, slope_x=0.0, slope_z=0.0, curve_z=0.0, left_edge=-60.0, right_edge=60.0,
                    kerb_height=0.12, pavement_width=3.0, lane_lines=(), salt=1,
                    asphalt_rgb=np.array([90, 90, 95], np.float32),
                    pavement_rgb=np.array([150, 145, 140], np.float32),
                    grass_rgb=np.array([95, 115, 60], np.float32))
    light = np.array([0.3, -0.9, -0.3])
    return Scene(ground=ground, objects=objects, light_dir=light / np.linalg.norm(light),
                 sun=1.0, sky_top_rgb=np.array([95, 145, 215], np.float32),
                 sky_horizon_rgb=np.array([200, 212, 228], np.float32), exposure=1.0,
                 white_balance=np.ones(3, np.float32))


def _build(kind, seed):
    rng = np.random.default_rng(seed)
    b = _Builder(rng)
    BUILDERS[kind](b, rng)
    return b.finish(rng)


def _place(kind, parts, lhw, x, z, ry, label=None):
    return SceneObject(kind, label, np.array([x, 1.65, z]), lhw, ry, parts)


def test_dark_paint_returns_far_fewer_points_than_white():
    parts, lhw = _build('car', 5)
    paint = parts.material == MATERIAL_ID['paint']

    def painted(rgb):
        rgb_all = parts.rgb.copy()
        rgb_all[paint] = rgb
        refl = parts.reflectance.copy()
        refl[paint] = reflectance_of('paint', rgb, np.random.default_rng(1))
        return dataclasses.replace(parts, rgb=rgb_all, reflectance=refl)

    black = _place('car', painted(np.array([30, 30, 34], np.float32)), lhw, -3.0, 15.0, np.pi / 2)
    white = _place('car', painted(np.array([225, 225, 225], np.float32)), lhw, 3.0, 15.0, np.pi / 2)
    scene = _flat_scene([black, white])
    calib = sample_kitti_calib(np.random.default_rng(0), perturb=False)
    frame = dict(points=simulate_lidar(scene, calib, np.random.default_rng(2)), calib=calib)
    cam = _cam_points(frame)
    n_black = _on_object(cam, black, scene.ground).sum()
    n_white = _on_object(cam, white, scene.ground).sum()
    assert n_white > 200 and n_black < 0.5 * n_white, (n_black, n_white)


def test_foliage_hides_from_the_camera_and_lets_part_of_the_lidar_through():
    car_parts, car_lhw = _build('car', 6)
    hedge_parts, hedge_lhw = _build('hedge', 7)
    car = _place('car', car_parts, car_lhw, 0.0, 16.0, 0.0, 'Car')
    hedge = _place('hedge', hedge_parts, hedge_lhw, 0.0, 10.0, 0.0)
    calib = sample_kitti_calib(np.random.default_rng(0), perturb=False)
    counts, visible = [], []
    for objects in ([car], [car, hedge]):
        scene = _flat_scene(objects)
        frame = dict(points=simulate_lidar(scene, calib, np.random.default_rng(2)), calib=calib)
        counts.append(_on_object(_cam_points(frame), car, scene.ground).sum())
        _, stats = render_camera(scene, calib, np.random.default_rng(3))
        visible.append(stats.visible_pixels[0] / stats.full_pixels[0])
    assert counts[0] > 100 and 0.05 * counts[0] < counts[1] < 0.8 * counts[0], counts
    assert visible[0] > 0.99 and 0.02 < visible[1] < 0.9, visible


def test_kerb_raises_pavement_points(frames):
    checked = 0
    for frame in frames:
        g = frame['scene'].ground
        cam = _cam_points(frame)
        near_object = np.zeros(len(cam), bool)
        for obj in frame['scene'].objects:
            near_object |= obj.near_surface(cam, 0.2)
        rise = g.road_height_at(cam[:, 0], cam[:, 2]) - cam[:, 1]  # height above the road surface
        ground_like = ~near_object & (np.abs(rise) < 0.4) & (cam[:, 2] > 3) & (cam[:, 2] < 30)
        for edge, side in ((g.left_edge, -1), (g.right_edge, 1)):
            beyond = side * (cam[:, 0] - edge)
            pavement = ground_like & (beyond > 0.4) & (beyond < 2.0)
            road = ground_like & (beyond < -0.4) & (beyond > -2.0)
            if pavement.sum() < 30 or road.sum() < 30:
                continue
            assert abs(np.median(rise[pavement]) - g.kerb_height) < 0.03
            assert abs(np.median(rise[road])) < 0.03
            checked += 1
        assert g.kerb_height >= 0.1
    assert checked >= 3


def test_composite_objects_points_lie_in_their_label_boxes_and_are_not_cuboids(frames):
    held, profiles = [], []
    for frame in frames:
        cam = _cam_points(frame)
        g = frame['scene'].ground
        for obj in frame['scene'].objects:
            if obj.label not in KITTI_NAME.values():
                continue
            mine = _on_object(cam, obj, g)
            if mine.sum() < 10:
                continue
            held.append(_inside_box(cam[mine], obj.bottom_center, obj.lhw, obj.rotation_y).mean())
            if obj.kind == 'car' and mine.sum() >= 150:
                local = (cam[mine] - obj.center) @ obj.rotation
                along = local[:, 0] / obj.lhw[0]  # -0.5..0.5 along the length
                top = -(local[:, 1] - obj.lhw[1] / 2) / obj.lhw[1]  # 0 bottom .. 1 top
                ends, middle = top[np.abs(along) > 0.38], top[np.abs(along) < 0.1]
                if len(ends) >= 10 and len(middle) >= 10:
                    profiles.append((ends.max(), middle.max()))
    held = np.array(held)
    assert len(held) >= 15 and held.min() >= 0.99, (len(held), held.min())
    profiles = np.array(profiles)
    assert len(profiles) >= 3
    # bonnet and boot are lower than the cabin's roof: the LiDAR outline is not a box
    assert (profiles[:, 0] < 0.75).all() and (profiles[:, 1] > 0.85).mean() > 0.5, profiles


def test_label_rates_are_within_a_factor_of_two_of_kitti(scenes):
    """Labelled objects of each class in the camera's view per scene (approximately what
    label_2 holds: whole box in front, centre inside the image's horizontal field of view)."""
    counts = {name: 0 for name in KITTI_PER_FRAME}
    for s in scenes:
        for o in s.objects:
            x, _, z = o.bottom_center
            if o.label in counts and z > 2 and abs(x) < 0.85 * z and z < 80:
                counts[o.label] += 1
    for name, kitti in KITTI_PER_FRAME.items():
        ratio = counts[name] / len(scenes) / kitti
        assert 0.5 <= ratio <= 2.0, (name, ratio)


def test_frame_depends_only_on_seed_split_index():
    a, b = generate_frame(9, 'training', 4), generate_frame(9, 'training', 4)
    np.testing.assert_array_equal(a['points'], b['points'])
    np.testing.assert_array_equal(a['image'], b['image'])
    assert [l['type'] for l in a['labels']] == [l['type'] for l in b['labels']]
    c = generate_frame(9, 'testing', 4)
    assert len(c['points']) != len(a['points']) or not np.array_equal(c['points'], a['points'])


def test_lidar_goes_through_car_windows_to_the_seats():
    """Glass returns few, weak echoes: most beams that reach a window return from the seats
    inside (or from beyond the car), as with real cars."""
    parts, lhw = _build('car', 8)
    car = _place('car', parts, lhw, 4.0, 9.0, 0.0, 'Car')  # side on, 9 m ahead
    scene = _flat_scene([car])
    calib = sample_kitti_calib(np.random.default_rng(0), perturb=False)
    frame = dict(points=simulate_lidar(scene, calib, np.random.default_rng(4)), calib=calib)
    local = (_cam_points(frame) - car.center) @ car.rotation

    def within(material, margin):
        k = int(np.flatnonzero(parts.material == MATERIAL_ID[material])[0])
        q = (local - parts.centre[k]) @ parts.axes[k]
        return (np.abs(q) <= parts.half[k] + margin).all(1)

    seats = within('fabric', 0.04)
    glass_shell = within('glass', 0.04) & ~within('glass', -0.04) & ~seats
    assert seats.sum() > 20 and glass_shell.sum() < 0.5 * seats.sum(), (seats.sum(), glass_shell.sum())
