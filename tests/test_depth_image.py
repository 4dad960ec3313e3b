"""The depth-aligned LiDAR image: z-buffer, image bounds, camera side, densification,
and re-projection under image flip / resize (checked against slow per-point references)."""
import math

import numpy as np
import pytest

from gemini_det3d.datasets.transforms.depth_grid import (CHANNELS, project_lidar_to_depth_grid,
                                                         project_points_to_image)

HW = (60, 160)  # small image: fast references, many points per pixel


def camera_matrix(hw=HW):
    """A KITTI-like 4x4 lidar2img (LiDAR x forward, y left, z up) for an image of size hw."""
    height, width = hw
    focal = 0.58 * width
    intrinsics = np.array([[focal, 0, width / 2 + 3.3, 44.9], [0, focal, height / 2 - 1.7, 0.2],
                           [0, 0, 1, 0.003], [0, 0, 0, 1.0]])
    velo_to_cam = np.array([[0, -1, 0, 0.01], [0, 0, -1, -0.08], [1, 0, 0, -0.27], [0, 0, 0, 1.0]])
    return intrinsics @ velo_to_cam


def unproject(lidar2img, u, v, depth):
    """LiDAR points [N, 3] that project to pixel coordinates (u, v) at the given depths."""
    pixel_h = np.stack([u * depth, v * depth, depth, np.ones_like(depth)])
    return (np.linalg.inv(lidar2img) @ pixel_h)[:3].T


def scene(rng, lidar2img, hw=HW, crowded=400, per_pixel=6, scattered=3000):
    """[N, 4] points: crowds sharing a pixel at different depths, scattered points, points
    behind the camera that would project inside the image, and points just outside it."""
    height, width = hw
    u0 = rng.integers(0, width, crowded) + 0.5
    v0 = rng.integers(0, height, crowded) + 0.5
    u = np.repeat(u0, per_pixel) + rng.uniform(-0.49, 0.49, crowded * per_pixel)
    v = np.repeat(v0, per_pixel) + rng.uniform(-0.49, 0.49, crowded * per_pixel)
    parts = [unproject(lidar2img, u, v, rng.uniform(2, 60, len(u)))]
    parts.append(unproject(lidar2img, rng.uniform(0, width, scattered),
                           rng.uniform(0, height, scattered), rng.uniform(1, 70, scattered)))
    # Behind the camera, on the rays of in-image pixels: a projection that forgot the depth
    # test would put them in the image (u = x / z is unchanged when x and z flip sign).
    parts.append(unproject(lidar2img, rng.uniform(0, width, 500), rng.uniform(0, height, 500),
                           -rng.uniform(0.5, 30, 500)))
    # Just outside the borders (a floor() or wrap-around bug would pull them in).
    n = 400
    outside_u = np.concatenate([rng.uniform(-3, -1e-6, n), rng.uniform(width, width + 3, n),
                                rng.uniform(0, width, 2 * n)])
    outside_v = np.concatenate([rng.uniform(0, height, 2 * n), rng.uniform(-3, -1e-6, n),
                                rng.uniform(height, height + 3, n)])
    parts.append(unproject(lidar2img, outside_u, outside_v, rng.uniform(2, 50, 4 * n)))
    xyz = np.concatenate(parts)
    refl = rng.uniform(0, 1, (len(xyz), 1))
    return np.hstack([xyz, refl]).astype(np.float32)


def reference_zbuffer(points, lidar2img, hw, min_depth=0.1, scale=(1.0, 1.0), flip=False):
    """Slow per-point reference: {(row, col): (depth, height, reflectance)} of the nearest point.

    ``scale`` / ``flip`` map raw-image coordinates to an augmented image of size hw.
    """
    height, width = hw
    m = np.asarray(lidar2img, dtype=np.float64)
    best = {}
    for x, y, z, r in points.astype(np.float64).tolist():
        cx, cy, cz = (m[i, 0] * x + m[i, 1] * y + m[i, 2] * z + m[i, 3] for i in range(3))
        if not cz > min_depth:
            continue
        u, v = cx / cz * scale[0], cy / cz * scale[1]
        if flip:
            u = width - u
        if not (0 <= u < width and 0 <= v < height):
            continue
        key = (math.floor(v), math.floor(u))
        if key not in best or cz < best[key][0]:
            best[key] = (cz, z, r)
    return best


def assert_grid_matches(grid, best):
    mask = grid[..., CHANNELS.index('mask')]
    assert set(zip(*np.nonzero(mask == 1))) == set(best), 'valid pixels differ'
    assert set(np.unique(mask)) <= {0.0, 1.0}
    rows, cols = zip(*best)
    expected = np.array([best[k] for k in best], dtype=np.float32)
    got = grid[list(rows), list(cols)][:, :3]
    np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope='module')
def frame():
    rng = np.random.default_rng(7)
    lidar2img = camera_matrix()
    return scene(rng, lidar2img), lidar2img


def test_zbuffer_keeps_nearest_point_per_pixel(frame):
    points, lidar2img = frame
    grid = project_lidar_to_depth_grid(points, lidar2img, HW)
    assert grid.shape == HW + (4, ) and grid.dtype == np.float32
    best = reference_zbuffer(points, lidar2img, HW)
    assert len(best) > 1000
    assert_grid_matches(grid, best)
    # The crowds really collide: fewer valid pixels than points inside the image.
    _, _, index = project_points_to_image(points, lidar2img, HW)
    assert len(index) > len(best) + 1000


def test_nothing_from_outside_or_behind(frame):
    points, lidar2img = frame
    # Keep only the points that must NOT show up: behind the camera or outside the image.
    uv_index = project_points_to_image(points, lidar2img, HW)[2]
    rejected = np.setdiff1d(np.arange(len(points)), uv_index)
    assert len(rejected) >= 2000
    grid = project_lidar_to_depth_grid(points[rejected], lidar2img, HW)
    assert not grid.any()
    # Behind-camera points alone (they sit on in-image rays) give an empty image too.
    cam_depth = points[:, :3].astype(np.float64) @ lidar2img[2, :3] + lidar2img[2, 3]
    behind = points[cam_depth < 0]
    assert len(behind) == 500
    assert not project_lidar_to_depth_grid(behind, lidar2img, HW).any()


def test_min_depth_is_exact():
    lidar2img = camera_matrix()
    rng = np.random.default_rng(3)
    u, v = rng.uniform(0, HW[1], 200), rng.uniform(0, HW[0], 200)
    too_close = unproject(lidar2img, u, v, np.full(200, 0.5 - 1e-6))
    far_enough = unproject(lidar2img, u, v, np.full(200, 0.5 + 1e-6))
    for xyz, expect_any in ((too_close, False), (far_enough, True)):
        points = np.hstack([xyz, np.ones((200, 1))])  # float64 input is accepted too
        grid = project_lidar_to_depth_grid(points, lidar2img, HW, min_depth=0.5)
        assert grid.any() == expect_any


def test_nan_points_are_ignored(frame):
    points, lidar2img = frame
    bad = points.copy()
    bad[::7, :3] = np.nan
    grid = project_lidar_to_depth_grid(bad, lidar2img, HW)
    assert_grid_matches(grid, reference_zbuffer(bad[~np.isnan(bad[:, 0])], lidar2img, HW))


def test_channel_selection_and_order(frame):
    points, lidar2img = frame
    full = project_lidar_to_depth_grid(points, lidar2img, HW)
    picked = project_lidar_to_depth_grid(points, lidar2img, HW, channels=('mask', 'depth'))
    np.testing.assert_array_equal(picked, full[..., [3, 0]])
    with pytest.raises(ValueError):
        project_lidar_to_depth_grid(points, lidar2img, HW, channels=('depth', 'colour'))


def test_dilation_fills_empty_pixels_from_nearest_neighbour(frame):
    points, lidar2img = frame
    sparse = points[::5]
    raw = project_lidar_to_depth_grid(sparse, lidar2img, HW)
    dense = project_lidar_to_depth_grid(sparse, lidar2img, HW, dilation=3)
    measured = raw[..., 3] == 1
    # Measured pixels are untouched.
    np.testing.assert_array_equal(dense[measured], raw[measured])
    depth = np.where(measured, raw[..., 0], np.inf)
    padded = np.pad(depth, 1, constant_values=np.inf)
    filled = 0
    for r, c in zip(*np.nonzero(~measured)):
        window = padded[r:r + 3, c:c + 3]
        if np.isinf(window).all():
            assert not dense[r, c].any()
            continue
        filled += 1
        wr, wc = np.unravel_index(np.argmin(window), window.shape)
        source = raw[r + wr - 1, c + wc - 1]
        assert dense[r, c, 0] == source[0]  # nearest depth of the window, not a blend
        np.testing.assert_array_equal(dense[r, c, 1:3], source[1:3])
        assert dense[r, c, 3] == 0.5
    assert filled > 1000


def test_flip_then_project_equals_project_then_flip(frame):
    points, lidar2img = frame
    width = HW[1]
    mirror = np.array([[-1.0, 0, width, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    flipped_camera = project_lidar_to_depth_grid(points, mirror @ lidar2img, HW)
    flipped_grid = project_lidar_to_depth_grid(points, lidar2img, HW)[:, ::-1]
    np.testing.assert_array_equal(flipped_camera, flipped_grid)


# ---------------------------------------------------------------------------------------------
# The two pipeline steps: LiDARToDepthImage (raw) and StackDepthImage (final geometry)
# ---------------------------------------------------------------------------------------------
def raw_results(points, lidar2img, hw=HW, seed=0):
    from mmdet3d.structures import LiDARPoints
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, hw + (3, ), dtype=np.uint8)
    return dict(points=LiDARPoints(points.copy(), points_dim=4), img=img, img_shape=hw,
                ori_shape=hw, lidar2img=lidar2img.copy())


def build(cfg):
    import gemini_det3d  # noqa: F401  (registers the transforms)
    from mmdet3d.registry import TRANSFORMS
    return TRANSFORMS.build(cfg)


def test_transform_stacks_raw_grid_without_augmentation(frame):
    points, lidar2img = frame
    results = build(dict(type='LiDARToDepthImage'))(raw_results(points, lidar2img))
    expected = project_lidar_to_depth_grid(points, lidar2img, HW)
    np.testing.assert_array_equal(results['depth_img'], expected)
    colour = results['img'].copy()
    results = build(dict(type='StackDepthImage'))(results)
    assert results['img'].shape == HW + (7, ) and results['img'].dtype == np.float32
    np.testing.assert_array_equal(results['img'][..., :3], colour[..., ::-1])  # BGR -> RGB
    np.testing.assert_array_equal(results['img'][..., 3:], expected)
    assert results['depth_img_channels'] == CHANNELS
    assert 'depth_img_source' not in results


def test_transform_refuses_augmented_input(frame):
    points, lidar2img = frame
    results = raw_results(points, lidar2img)
    results['scale_factor'] = (2.0, 2.0)
    with pytest.raises(RuntimeError, match='before any augmentation'):
        build(dict(type='LiDARToDepthImage'))(results)


def test_lidar2img_from_cam2img_and_lidar2cam(frame):
    points, lidar2img = frame
    results = raw_results(points, lidar2img)
    del results['lidar2img']
    results['cam2img'] = (lidar2img @ np.linalg.inv(camera_matrix_extrinsics()))[:3, :4]
    results['lidar2cam'] = camera_matrix_extrinsics()
    out = build(dict(type='LiDARToDepthImage'))(results)
    np.testing.assert_array_equal(out['depth_img'],
                                  project_lidar_to_depth_grid(points, lidar2img, HW))


def camera_matrix_extrinsics():
    return np.array([[0, -1, 0, 0.01], [0, 0, -1, -0.08], [1, 0, 0, -0.27], [0, 0, 0, 1.0]])


def test_stacked_flip_equals_flipped_stack(frame):
    points, lidar2img = frame
    plain = build(dict(type='StackDepthImage'))(
        build(dict(type='LiDARToDepthImage'))(raw_results(points, lidar2img)))
    results = build(dict(type='LiDARToDepthImage'))(raw_results(points, lidar2img))
    results = build(dict(type='RandomFlip3D', flip_ratio_bev_horizontal=1.0))(results)
    assert results['flip'] and results['pcd_horizontal_flip']
    flipped = build(dict(type='StackDepthImage'))(results)
    np.testing.assert_array_equal(flipped['img'], plain['img'][:, ::-1])


@pytest.mark.parametrize('scale', [0.5, 0.37, 1.6])
def test_resize_reprojects_without_mixing_or_dropping(frame, scale):
    points, lidar2img = frame
    results = build(dict(type='LiDARToDepthImage'))(raw_results(points, lidar2img))
    out_hw = (round(HW[0] * scale), round(HW[1] * scale))
    results = build(dict(type='Resize', scale=out_hw[::-1], keep_ratio=False))(results)
    results = build(dict(type='StackDepthImage'))(results)
    grid = results['img'][..., 3:]
    assert grid.shape[:2] == out_hw
    sx, sy = results['scale_factor']
    best = reference_zbuffer(points, lidar2img, out_hw, scale=(sx, sy))
    assert_grid_matches(grid, best)
    # No mixing: every valid depth is the depth of a real point.
    _, depth, _ = project_points_to_image(points, lidar2img, HW)
    valid = grid[..., 3] == 1
    assert np.isin(grid[..., 0][valid], depth.astype(np.float32)).all()
    # No dropping: every in-image point's pixel is valid and at most as deep as the point.
    uv, depth, _ = project_points_to_image(points, lidar2img, HW)
    cols = np.floor(uv[:, 0] * sx).astype(int)
    rows = np.floor(uv[:, 1] * sy).astype(int)
    assert valid[rows, cols].all()
    assert (grid[rows, cols, 0] <= depth.astype(np.float32)).all()
    if scale < 1:
        # What the re-projection avoids: nearest-neighbour subsampling of the raw grid loses
        # most of the measured pixels when shrinking.
        raw = project_lidar_to_depth_grid(points, lidar2img, HW)
        ri = (np.arange(out_hw[0]) / sy).astype(int)
        ci = (np.arange(out_hw[1]) / sx).astype(int)
        nearest_valid = (raw[ri][:, ci, 3] == 1).sum()
        assert valid.sum() > nearest_valid


def test_resize_then_flip_matches_reference(frame):
    points, lidar2img = frame
    results = build(dict(type='LiDARToDepthImage'))(raw_results(points, lidar2img))
    results = build(dict(type='Resize', scale=(200, 75), keep_ratio=False))(results)
    results = build(dict(type='RandomFlip3D', flip_ratio_bev_horizontal=1.0))(results)
    results = build(dict(type='StackDepthImage'))(results)
    sx, sy = results['scale_factor']
    best = reference_zbuffer(points, lidar2img, (75, 200), scale=(sx, sy), flip=True)
    assert_grid_matches(results['img'][..., 3:], best)
