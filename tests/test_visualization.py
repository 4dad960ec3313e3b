"""Pictures of detections: box pixels of both colours where the boxes are, none without boxes,
Open3D offscreen on this machine, and tools/visualize.py on a hand-written KITTI frame."""
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest

from gemini_det3d.errors import GeminiInputError
from gemini_det3d.visualization import GT_RGB, PRED_RGB, FramePictureWriter, VisFrame
from gemini_det3d.visualization.image_overlay import project_segments, render_camera_view
from gemini_det3d.visualization.views import view_projection
from helpers.scripts import load_script

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = ('configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_'
               '1xb1-cpu_synthetic-kitti-3d-3class.py')
MIN_BOX_PIXELS = 60

# A KITTI-like rig: LiDAR x forward / y left / z up -> camera x right / y down / z forward.
LIDAR2CAM = np.array([[0., -1, 0, 0], [0, 0, -1, -0.08], [1, 0, 0, -0.27], [0, 0, 0, 1]])
P2 = np.array([[700., 0, 300, 0], [0, 700, 90, 0], [0, 0, 1, 0]])
IMAGE_HW = (180, 600)
GT_BOX = np.array([[15.0, 1.0, -1.7, 4.0, 1.8, 1.5, 0.0]])     # x y z(bottom) l w h yaw
PRED_BOX = GT_BOX + [1.2, -2.5, 0.0, 0.0, 0.0, 0.0, 0.3]       # shifted right and rotated


def _lidar2img():
    return np.vstack([P2, [0, 0, 0, 1]]) @ LIDAR2CAM


def _scene_points(rng, n=6000):
    """Ground, a wall and the car inside the GT box; float32 (N, 4)."""
    ground = np.c_[rng.uniform(0, 60, n), rng.uniform(-25, 25, n), rng.normal(-1.7, 0.03, n)]
    wall = np.c_[rng.uniform(5, 60, n // 4), np.full(n // 4, 12.0), rng.uniform(-1.7, 2, n // 4)]
    car = np.c_[rng.uniform(13.2, 16.8, n // 4), rng.uniform(0.2, 1.8, n // 4),
                rng.uniform(-1.6, -0.3, n // 4)]
    xyz = np.vstack([ground, wall, car])
    return np.c_[xyz, rng.uniform(0, 1, len(xyz))].astype(np.float32)


def _grey_image(rng):
    """Random grey levels: no pixel is near pure green or pure red."""
    grey = rng.integers(40, 200, IMAGE_HW, dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _mask(image_rgb, rgb, tol=10):
    return np.all(np.abs(image_rgb.astype(np.int16) - np.array(rgb)) <= tol, axis=-1)


def _centroid(mask):
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


def _project(projection, xyz):
    h = np.asarray(projection)[:3] @ np.r_[xyz, 1.0]
    return h[:2] / h[2]


def _box_centre(box):
    return box[0, :3] + [0, 0, box[0, 5] / 2]


@pytest.fixture(scope='module')
def scene():
    rng = np.random.default_rng(0)
    return dict(points=_scene_points(rng), image=_grey_image(rng))


def _open3d_or_skip():
    try:
        import open3d  # noqa: F401
    except ImportError as exc:  # only then: the renderer itself must work here
        pytest.skip(f'open3d cannot be imported: {exc}')


@pytest.mark.slow
@pytest.mark.parametrize('backend', ['open3d', 'software'])
def test_scan_views_draw_both_box_colours_where_the_boxes_are(scene, backend, tmp_path):
    if backend == 'open3d':
        _open3d_or_skip()
    writer = FramePictureWriter(backend, size=(500, 400))
    assert writer.backend == backend  # 'open3d' raises if the offscreen renderer cannot start
    frame = VisFrame('000000', scene['points'], scene['image'], _lidar2img(), GT_BOX, PRED_BOX)
    for view_name, view in writer.views.items():
        picture = writer.render_scan_view(view_name, frame)
        assert picture.shape == (view.height, view.width, 3) and picture.dtype == np.uint8
        projection = view_projection(view)
        for box, color in ((GT_BOX, GT_RGB), (PRED_BOX, PRED_RGB)):
            mask = _mask(picture, color)
            assert mask.sum() >= MIN_BOX_PIXELS, (view_name, color, mask.sum())
            if view_name == 'bev':  # outline centroid = box centre, seen from above
                expected = _project(projection, _box_centre(box))
                assert np.linalg.norm(_centroid(mask) - expected) < 6, (view_name, color)
        # forward is up and left is left in the BEV: the prediction (2.5 m to the right,
        # 1.2 m ahead) lies right of and above the ground truth
        if view_name == 'bev':
            gt_c, pred_c = _centroid(_mask(picture, GT_RGB)), _centroid(_mask(picture, PRED_RGB))
            assert pred_c[0] > gt_c[0] + 8 and pred_c[1] < gt_c[1] - 3

        empty = writer.render_scan_view(view_name, VisFrame('000000', scene['points']))
        assert _mask(empty, GT_RGB).sum() == 0 and _mask(empty, PRED_RGB).sum() == 0
        assert (empty.max(axis=-1) > 0).sum() > 1000  # the points are there


@pytest.mark.slow
def test_writer_writes_three_pngs_with_box_pixels(scene, tmp_path):
    import cv2
    _open3d_or_skip()
    writer = FramePictureWriter('open3d', size=(500, 400))
    frame = VisFrame('000042', scene['points'], scene['image'], _lidar2img(), GT_BOX, PRED_BOX)
    paths = writer.write(frame, tmp_path / 'with')
    empty = writer.write(VisFrame('000042', scene['points'], scene['image'], _lidar2img()),
                         tmp_path / 'without')
    assert sorted(p.name for p in paths.values()) == [
        '000042_bev.png', '000042_camera.png', '000042_chase.png']
    for name in ('bev', 'chase', 'camera'):
        with_boxes = cv2.imread(str(paths[name]))[..., ::-1]
        without = cv2.imread(str(empty[name]))[..., ::-1]
        for color in (GT_RGB, PRED_RGB):
            assert _mask(with_boxes, color).sum() >= MIN_BOX_PIXELS, (name, color)
            assert _mask(without, color).sum() == 0, (name, color)


def test_camera_view_boxes_at_their_projection_and_depth_only_at_lidar_pixels(scene):
    lidar2img = _lidar2img()
    picture = render_camera_view(scene['image'], scene['points'], lidar2img, GT_BOX, PRED_BOX)
    assert picture.shape == IMAGE_HW + (3,)
    rgb = picture[..., ::-1]
    for box, color in ((GT_BOX, GT_RGB), (PRED_BOX, PRED_RGB)):
        mask = _mask(rgb, color)
        assert mask.sum() >= MIN_BOX_PIXELS
        expected = _project(lidar2img, _box_centre(box))
        assert np.linalg.norm(_centroid(mask) - expected) < 15, (color, expected)
    # depth overlay: changed pixels (no boxes) are exactly the projected points' pixels
    plain = render_camera_view(scene['image'], scene['points'], lidar2img)
    changed = np.any(plain != scene['image'], axis=-1)
    xyz1 = np.c_[scene['points'][:, :3], np.ones(len(scene['points']))]
    h = xyz1 @ lidar2img[:3].T
    front = h[:, 2] > 0.1
    uv = np.floor(h[front, :2] / h[front, 2:3]).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < IMAGE_HW[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < IMAGE_HW[0])
    hit = np.zeros(IMAGE_HW, bool)
    hit[uv[inside, 1], uv[inside, 0]] = True
    assert hit.sum() > 500
    assert not (changed & ~hit).any()            # nothing painted outside LiDAR pixels
    assert changed.sum() > 0.95 * hit.sum()      # and (nearly) all of them painted
    # the depth colormap never looks like a box colour
    for color in (GT_RGB, PRED_RGB):
        assert _mask(plain[..., ::-1], color).sum() == 0


def test_box_behind_the_camera_is_skipped_and_straddling_edges_are_clipped(scene):
    lidar2img = _lidar2img()
    behind = np.array([[-10.0, 0.0, -1.7, 4.0, 1.8, 1.5, 0.0]])
    picture = render_camera_view(scene['image'], None, lidar2img, gt_boxes=behind)
    assert _mask(picture[..., ::-1], GT_RGB).sum() == 0
    # an edge from 5 m behind to 20 m ahead: only its part in front of the near plane
    segment = np.array([[[-5.0, 0.0, -1.7], [20.0, 0.0, -1.7]]])
    pixels = project_segments(segment, lidar2img, min_depth=0.1)
    assert pixels.shape == (1, 2, 2) and np.isfinite(pixels).all()
    near_end = lidar2img[:3] @ np.r_[0.1 + 0.27, 0.0, -1.7, 1.0]  # camera 0.27 m ahead
    assert np.allclose(pixels[0, 0], near_end[:2] / near_end[2], atol=1e-6)
    far_end = _project(lidar2img, [20.0, 0.0, -1.7])
    assert np.allclose(pixels[0, 1], far_end, atol=1e-6)  # the visible end is untouched
    fully_behind = np.array([[[-5.0, 0.0, -1.7], [-1.0, 0.0, -1.7]]])
    assert project_segments(fully_behind, lidar2img).shape == (0, 2, 2)


def test_box_crossing_the_near_plane_draws_only_its_part_in_front(scene):
    lidar2img = _lidar2img()
    # 6 m long, centred 1 m ahead of the LiDAR: its rear half is behind the camera
    crossing = np.array([[1.0, 0.0, -1.7, 6.0, 1.8, 1.5, 0.0]])
    picture = render_camera_view(scene['image'], None, lidar2img, gt_boxes=crossing)
    mask = _mask(picture[..., ::-1], GT_RGB)
    assert mask.sum() >= MIN_BOX_PIXELS
    # its front face (4 m ahead, 1.8 m wide) spans the middle columns
    cols = np.nonzero(mask)[1]
    front_left = _project(lidar2img, [4.0, 0.9, -1.7])[0]
    front_right = _project(lidar2img, [4.0, -0.9, -1.7])[0]
    assert np.isin(np.arange(int(front_left), int(front_right)), cols).mean() > 0.9
    # its top left edge runs towards the camera through this point (3 m ahead); a corner
    # behind the camera projected as if in front would send the edge 15 px higher
    assert _near_pixel_count(mask, _project(lidar2img, [3.0, 0.9, -0.2])) >= 3


def _near_pixel_count(mask, uv, radius=3):
    u, v = np.round(uv).astype(int)
    return mask[max(v - radius, 0):v + radius + 1, max(u - radius, 0):u + radius + 1].sum()


def test_a_known_box_is_drawn_at_its_projected_corners(scene):
    """Corners projected by hand from the calibration (not by mmdet3d): box-coloured pixels
    at every visible corner and along the edges between them, none far from the box."""
    lidar2img = _lidar2img()
    x, y, z, length, width, height, _ = GT_BOX[0]
    corners = np.array([[x + dx * length / 2, y + dy * width / 2, z + dz * height]
                        for dx in (-1, 1) for dy in (-1, 1) for dz in (0, 1)])  # yaw 0
    uv = np.array([_project(lidar2img, c) for c in corners])
    picture = render_camera_view(scene['image'], None, lidar2img, gt_boxes=GT_BOX,
                                 pred_boxes=np.zeros((0, 7)))[..., ::-1]
    mask = _mask(picture, GT_RGB)
    for corner_uv in uv:
        assert _near_pixel_count(mask, corner_uv) >= 3, corner_uv
    # the middle of the near bottom edge (rear face, x - l/2) and of a side edge
    for a, b in ((0, 2), (0, 4), (1, 5)):
        assert _near_pixel_count(mask, (uv[a] + uv[b]) / 2) >= 3, (a, b)
    low, high = uv.min(axis=0) - 4, uv.max(axis=0) + 4
    rows, cols = np.nonzero(mask)
    assert ((cols >= low[0]) & (cols <= high[0]) & (rows >= low[1]) & (rows <= high[1])).all()
    # the rest of the picture is the image, untouched
    untouched = ~np.any(np.abs(picture.astype(int) - scene['image']) > 0, axis=-1)
    outside = np.ones(IMAGE_HW, bool)
    outside[int(low[1]):int(high[1]) + 1, int(low[0]):int(high[0]) + 1] = False
    assert untouched[outside].all()


@pytest.mark.slow
def test_without_vulkan_the_probe_reports_and_auto_falls_back(monkeypatch, capsys):
    """Open3D aborts the whole process when Vulkan is missing: the probe must run it in a
    child, and 'auto' must then draw with the software renderer after one warning line."""
    _open3d_or_skip()
    from gemini_det3d.visualization import open3d_render
    from gemini_det3d.visualization.frame_pictures import resolve_backend
    monkeypatch.setattr(open3d_render, '_probe_result', None)
    monkeypatch.delenv(open3d_render.OFFSCREEN_ENV, raising=False)
    monkeypatch.setenv('VK_ICD_FILENAMES', '/nonexistent/vulkan_icd.json')  # no Vulkan driver
    ok, reason = open3d_render.offscreen_available()
    assert not ok and reason
    capsys.readouterr()
    assert resolve_backend('auto') == 'software'
    warning = capsys.readouterr().err.strip()
    assert warning.startswith('warning: Open3D offscreen rendering is unavailable')
    assert '\n' not in warning
    with pytest.raises(GeminiInputError, match='unavailable'):
        resolve_backend('open3d')


# --------------------------------------------------------------------------------------------
# tools/visualize.py on a KITTI frame written here (numpy + cv2 only)
# --------------------------------------------------------------------------------------------
def _kitti_label_line(box_lidar, score=None):
    """A KITTI label line for a LiDAR box (bottom centre), written the long way round."""
    x, y, z, length, width, height, yaw = box_lidar
    location = (LIDAR2CAM @ [x, y, z, 1.0])[:3]
    rotation_y = -yaw - np.pi / 2  # LiDAR yaw (from +x towards +y) -> KITTI ry (camera y axis)
    line = (f'Car 0.00 0 0.00 100.00 50.00 200.00 120.00 {height:.2f} {width:.2f} {length:.2f} '
            f'{location[0]:.2f} {location[1]:.2f} {location[2]:.2f} {rotation_y:.2f}')
    return line + (f' {score:.2f}' if score is not None else '')


def _write_kitti_frame(root, scene, idx='000007'):
    import cv2
    base = root / 'training'
    for sub in ('velodyne', 'calib', 'image_2', 'label_2'):
        (base / sub).mkdir(parents=True, exist_ok=True)
    scene['points'].astype(np.float32).tofile(base / 'velodyne' / f'{idx}.bin')
    r0 = np.eye(3)
    velo_to_cam = LIDAR2CAM[:3]
    p = ' '.join(f'{v:.6e}' for v in P2.ravel())
    lines = [f'P0: {p}', f'P1: {p}', f'P2: {p}', f'P3: {p}',
             'R0_rect: ' + ' '.join(f'{v:.6e}' for v in r0.ravel()),
             'Tr_velo_to_cam: ' + ' '.join(f'{v:.6e}' for v in velo_to_cam.ravel()),
             'Tr_imu_to_velo: ' + ' '.join(f'{v:.6e}' for v in np.eye(3, 4).ravel())]
    (base / 'calib' / f'{idx}.txt').write_text('\n'.join(lines) + '\n')
    cv2.imwrite(str(base / 'image_2' / f'{idx}.png'), scene['image'])
    (base / 'label_2' / f'{idx}.txt').write_text(_kitti_label_line(GT_BOX[0]) + '\n')
    preds = root / 'preds'
    preds.mkdir(exist_ok=True)
    low_score_box = GT_BOX[0] + [0, 8, 0, 0, 0, 0, 0]
    (preds / f'{idx}.txt').write_text(_kitti_label_line(PRED_BOX[0], 0.9) + '\n' +
                                      _kitti_label_line(low_score_box, 0.1) + '\n')
    return base, preds


def test_kitti_labels_become_the_lidar_boxes_they_were_written_from(scene, tmp_path):
    from gemini_det3d.visualization.kitti_frame_source import load_kitti_frame
    base, preds = _write_kitti_frame(tmp_path, scene)
    frame = load_kitti_frame(base, '000007', preds, score_thr=0.5)
    assert frame.name == '000007' and frame.image_bgr.shape == IMAGE_HW + (3,)
    assert np.allclose(frame.gt_boxes, GT_BOX, atol=0.02)
    assert np.allclose(frame.pred_boxes, PRED_BOX, atol=0.02)  # the 0.1-score box is hidden
    assert np.allclose(frame.lidar2img, _lidar2img(), atol=1e-5)


@pytest.mark.slow
def test_cli_raw_kitti_frame_writes_three_pictures(scene, tmp_path):
    import cv2
    _open3d_or_skip()
    base, preds = _write_kitti_frame(tmp_path, scene)
    out = tmp_path / 'pictures'
    env = dict(os.environ, GEMINI_OPEN3D_OFFSCREEN='')  # probe, as a user's run does
    done = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'visualize.py'), '--frame',
                           str(base), '--idx', '000007', '--pred-dir', str(preds), '--out-dir',
                           str(out), '--renderer', 'open3d'], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(out)) == ['000007_bev.png', '000007_camera.png', '000007_chase.png']
    for name in os.listdir(out):
        rgb = cv2.imread(str(out / name))[..., ::-1]
        assert _mask(rgb, GT_RGB).sum() >= MIN_BOX_PIXELS, name
        assert _mask(rgb, PRED_RGB).sum() >= MIN_BOX_PIXELS, name
    assert '1 frame(s)' in done.stdout


def _run_main(argv):
    return load_script('tools/visualize.py').main(argv)


@pytest.mark.parametrize('damage, words', [
    ('no_velodyne', 'velodyne file not found'),
    ('short_velodyne', 'not a multiple of 16'),
    ('no_idx', '--frame needs --idx'),
])
def test_cli_bad_input_is_one_line_naming_the_file(scene, tmp_path, damage, words):
    base, _ = _write_kitti_frame(tmp_path, scene)
    scan = base / 'velodyne' / '000007.bin'
    argv = ['--frame', str(base), '--idx', '000007', '--out-dir', str(tmp_path / 'o'),
            '--renderer', 'software', '--no-progress']
    if damage == 'no_velodyne':
        scan.unlink()
    elif damage == 'short_velodyne':
        scan.write_bytes(scan.read_bytes()[:-6])
    elif damage == 'no_idx':
        argv = argv[:2] + argv[4:]
    with pytest.raises(GeminiInputError) as info:
        _run_main(argv)
    message = str(info.value)
    assert '\n' not in message and words in message, message
    if damage != 'no_idx':
        assert message.startswith(str(scan)), message


def test_interactive_without_display_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    with pytest.raises(GeminiInputError, match='needs a display'):
        _run_main(['--frame', str(tmp_path), '--idx', '000000', '--interactive'])


def test_cli_dataset_mode_with_a_results_pickle(converted_synthetic_kitti, tmp_path):
    """Config + split + a DumpResults-style .pkl (the ground truth shifted 1.5 m)."""
    import cv2
    import mmengine
    import torch
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes
    root = converted_synthetic_kitti
    infos = mmengine.load(osp.join(root, 'kitti_infos_val.pkl'))['data_list']
    results = []
    for info in infos:
        cam = np.array([i['bbox_3d'] for i in info['instances'] if 0 <= i['bbox_label_3d'] < 3],
                       dtype=np.float32).reshape(-1, 7)
        lidar2cam = np.array(info['images']['CAM2']['lidar2cam'])
        boxes = CameraInstance3DBoxes(cam).convert_to(Box3DMode.LIDAR, np.linalg.inv(lidar2cam))
        boxes.tensor[:, 1] += 1.5
        results.append(dict(lidar_path='/elsewhere/' + info['lidar_points']['lidar_path'],
                            pred_instances_3d=dict(bboxes_3d=boxes,
                                                   scores_3d=torch.full((len(boxes),), 0.9),
                                                   labels_3d=torch.zeros(len(boxes)).long())))
    results_path = tmp_path / 'results.pkl'
    results_path.write_bytes(pickle.dumps(results[::-1]))  # matched by frame, not position
    out = tmp_path / 'pictures'
    _run_main([osp.join(REPO, TINY_CONFIG), '--split', 'val', '--num', '1', '--results',
               str(results_path), '--out-dir', str(out), '--renderer', 'software',
               '--no-progress', '--cfg-options', f'val_dataloader.dataset.data_root={root}',
               f'test_dataloader.dataset.data_root={root}'])
    name = osp.splitext(osp.basename(infos[0]['lidar_points']['lidar_path']))[0]
    assert sorted(os.listdir(out)) == [f'{name}_bev.png', f'{name}_camera.png',
                                       f'{name}_chase.png']
    bev = cv2.imread(str(out / f'{name}_bev.png'))[..., ::-1]
    assert _mask(bev, GT_RGB).sum() >= MIN_BOX_PIXELS
    assert _mask(bev, PRED_RGB).sum() >= MIN_BOX_PIXELS
