"""Open3D pictures of a scan with boxes: offscreen PNG rendering and an interactive window.

Offscreen rendering uses ``open3d.visualization.rendering.OffscreenRenderer`` (Filament). On
a machine without a GPU it runs on Mesa's llvmpipe Vulkan device (Debian: ``libvulkan1`` +
``mesa-vulkan-drivers``); no display is needed. Points and box edges use unlit materials and
post-processing is off, so every pixel has exactly the colour it was given: box edges are
solid :data:`.style.GT_RGB` / :data:`.style.PRED_RGB` lines of ``line_width`` pixels.

Two facts about Open3D 0.20 shape this module:

* when Vulkan is missing, creating the renderer ABORTS the process (a C++ panic, not a Python
  exception), so :func:`offscreen_available` asks a short-lived child process first;
* two renderers alive at once abort the process at exit, so one renderer is kept and
  replaced (not duplicated) when another image size is asked for.
"""
import math
import os
import subprocess
import sys
from contextlib import contextmanager
from typing import List, Optional, Tuple

import numpy as np

from ..errors import GeminiInputError
from .box_geometry import BOX_EDGES, POINTS_PER_BOX, box_outline_points
from .style import BACKGROUND_RGB, GT_RGB, PRED_RGB, point_colors
from .views import ViewSpec

# Set to "0" to skip Open3D (software renderer), "1" to trust it without probing.
OFFSCREEN_ENV = 'GEMINI_OPEN3D_OFFSCREEN'

_PROBE = ('import numpy, open3d.visualization.rendering as r\n'
          'x = r.OffscreenRenderer(16, 16)\n'
          'assert numpy.asarray(x.render_to_image()).shape == (16, 16, 3)\n'
          'print("offscreen-ok")\n')
_probe_result: Optional[Tuple[bool, str]] = None
_renderer = None  # the one live OffscreenRenderer
_renderer_size: Optional[Tuple[int, int]] = None


def offscreen_available() -> Tuple[bool, str]:
    """Whether Open3D's offscreen renderer works here; ``(ok, reason if not)``. Cached."""
    global _probe_result
    if _probe_result is not None:
        return _probe_result
    forced = os.environ.get(OFFSCREEN_ENV)
    if forced in ('0', '1'):
        _probe_result = (forced == '1', f'{OFFSCREEN_ENV}={forced}')
        return _probe_result
    try:
        done = subprocess.run([sys.executable, '-c', _PROBE], capture_output=True, text=True,
                              timeout=120)
        ok = done.returncode == 0 and 'offscreen-ok' in done.stdout
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        reason = '' if ok else (lines[-1].strip() if lines else f'exit code {done.returncode}')
    except subprocess.TimeoutExpired:
        ok, reason = False, 'the offscreen renderer did not start within 120 s'
    _probe_result = (ok, reason)
    return _probe_result


@contextmanager
def _native_output_silenced():
    """Filament prints its start-up banner from C++ straight to file descriptors 1 and 2."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)


def _get_renderer(width: int, height: int):
    global _renderer, _renderer_size
    if _renderer is not None and _renderer_size == (width, height):
        return _renderer
    import open3d as o3d
    from open3d.visualization import rendering
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    if _renderer is not None:  # never two at once (see the module docstring)
        _renderer.scene.clear_geometry()
        _renderer = None
    with _native_output_silenced():
        _renderer = rendering.OffscreenRenderer(width, height)
    _renderer.scene.set_background([c / 255 for c in BACKGROUND_RGB] + [1.0])
    _renderer.scene.view.set_post_processing(False)  # no tone mapping: exact colours
    _renderer_size = (width, height)
    return _renderer


def point_cloud_geometry(points: np.ndarray, color_by: str = 'height'):
    """``open3d.geometry.PointCloud`` of [N, >=3] points coloured by height or reflectance."""
    import open3d as o3d
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(
        np.asarray(points[:, :3], dtype=np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(point_colors(points, color_by) / 255.0)
    return cloud


def boxes_line_set(boxes, color_rgb):
    """``open3d.geometry.LineSet`` of the boxes' edges and heading ticks, one colour;
    ``None`` when there are no boxes."""
    import open3d as o3d
    outline = box_outline_points(boxes)
    if len(outline) == 0:
        return None
    offsets = POINTS_PER_BOX * np.arange(len(outline))[:, None, None]
    lines = (BOX_EDGES[None] + offsets).reshape(-1, 2)
    line_set = o3d.geometry.LineSet(o3d.utility.Vector3dVector(outline.reshape(-1, 3)),
                                    o3d.utility.Vector2iVector(lines))
    line_set.paint_uniform_color([c / 255 for c in color_rgb])
    return line_set


def scene_geometries(points, gt_boxes=None, pred_boxes=None, color_by='height') -> List[tuple]:
    """``(name, geometry, kind)`` of the scene; kind is ``'points'`` or ``'lines'``."""
    items = []
    if points is not None and len(points):
        items.append(('points', point_cloud_geometry(points, color_by), 'points'))
    for name, boxes, color in (('gt_boxes', gt_boxes, GT_RGB),
                               ('pred_boxes', pred_boxes, PRED_RGB)):
        line_set = boxes_line_set(boxes, color)
        if line_set is not None:
            items.append((name, line_set, 'lines'))
    return items


def _line_width_scale(fov_deg: float) -> float:
    """Open3D 0.20's ``unlitLine`` draws ``line_width * 0.5 / tan(fov / 2)`` pixels wide
    (measured: 12 px for width 1 at a 4.6 degree field of view, whatever the image size), so
    the narrow-angle BEV camera would get 10x thicker lines than the chase view without this."""
    return 2.0 * math.tan(math.radians(fov_deg) / 2)


def render_view_open3d(view: ViewSpec, points: np.ndarray, gt_boxes=None, pred_boxes=None,
                       color_by: str = 'height', point_size: float = 2.0,
                       line_width: float = 3.0) -> np.ndarray:
    """Render one view offscreen. Returns [H, W, 3] uint8 RGB.

    Call :func:`offscreen_available` first: without Vulkan this aborts the process.
    """
    from open3d.visualization import rendering
    renderer = _get_renderer(view.width, view.height)
    point_material = rendering.MaterialRecord()
    point_material.shader = 'defaultUnlit'
    point_material.point_size = float(point_size)
    line_material = rendering.MaterialRecord()
    line_material.shader = 'unlitLine'  # screen-space wide lines, flat colour
    line_material.line_width = float(line_width) * _line_width_scale(view.fov_deg)
    scene = renderer.scene
    scene.clear_geometry()
    try:
        for name, geometry, kind in scene_geometries(points, gt_boxes, pred_boxes, color_by):
            material = point_material if kind == 'points' else line_material
            scene.add_geometry(name, geometry, material)
        renderer.setup_camera(view.fov_deg, np.asarray(view.center, np.float32),
                              np.asarray(view.eye, np.float32), np.asarray(view.up, np.float32),
                              view.near, view.far)
        image = np.asarray(renderer.render_to_image())
    finally:
        scene.clear_geometry()  # a renderer holding geometry can abort at exit
    return np.ascontiguousarray(image[..., :3])


def has_display() -> bool:
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def require_display() -> None:
    """Raise the one-line error of ``--interactive`` on a machine without a display."""
    if not has_display():
        raise GeminiInputError('--interactive needs a display, but neither DISPLAY nor '
                               'WAYLAND_DISPLAY is set (use the PNG output instead)')


def show_interactive(points: np.ndarray, gt_boxes=None, pred_boxes=None, color_by='height',
                     title: str = 'gemini_det3d') -> None:
    """Open an Open3D window with the scan and boxes (blocks until it is closed)."""
    require_display()
    import open3d as o3d
    geometries = [g for _, g, _ in scene_geometries(points, gt_boxes, pred_boxes, color_by)]
    geometries.append(o3d.geometry.TriangleMesh.create_coordinate_frame(size=2.0))  # the ego
    o3d.visualization.draw_geometries(geometries, window_name=title)
