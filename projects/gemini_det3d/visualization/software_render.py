"""Software rendering of the scan views: the fallback when Open3D's offscreen renderer
cannot start (no Vulkan driver). Same framing and colours as the Open3D path (:mod:`.views`,
:mod:`.style`), simpler looks: square points (numpy), boxes drawn as on the camera picture
(:func:`.image_overlay.draw_boxes`, mmdet3d's visualizer)."""
import numpy as np

from .image_overlay import draw_boxes
from .style import BACKGROUND_RGB, GT_RGB, PRED_RGB, point_colors
from .views import ViewSpec, view_projection


def splat_points(canvas: np.ndarray, points: np.ndarray, colors_rgb: np.ndarray,
                 projection: np.ndarray, point_size: int = 2, min_depth: float = 0.1):
    """Draw points as ``point_size`` square pixels, far ones first so near ones cover them.

    Args:
        canvas (np.ndarray): [H, W, 3] uint8 RGB, painted in place.
        points (np.ndarray): [N, >=3]; colors_rgb (np.ndarray): [N, 3] uint8.
        projection (np.ndarray): [4, 4] world-to-pixel matrix.
    """
    height, width = canvas.shape[:2]
    homog = np.c_[points[:, :3], np.ones(len(points))] @ np.asarray(projection)[:3].T
    depth = homog[:, 2]
    front = depth > min_depth
    uv = np.floor(homog[front, :2] / depth[front, None]).astype(np.int64)
    colors, depth = colors_rgb[front], depth[front]
    order = np.argsort(-depth, kind='stable')
    uv, colors = uv[order], colors[order]
    for du in range(point_size):
        for dv in range(point_size):
            u, v = uv[:, 0] + du, uv[:, 1] + dv
            inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
            canvas[v[inside], u[inside]] = colors[inside]  # later (nearer) writes win
    return canvas


def render_view_software(view: ViewSpec, points: np.ndarray, gt_boxes=None, pred_boxes=None,
                         color_by: str = 'height', point_size: int = 2,
                         line_width: int = 2) -> np.ndarray:
    """One scan view. Returns [H, W, 3] uint8 RGB (as the Open3D renderer does)."""
    canvas = np.empty((view.height, view.width, 3), np.uint8)
    canvas[:] = BACKGROUND_RGB
    projection = view_projection(view)
    if points is not None and len(points):
        splat_points(canvas, points, point_colors(points, color_by), projection, point_size)
    return draw_boxes(canvas, [(gt_boxes, GT_RGB), (pred_boxes, PRED_RGB)], projection,
                      line_width, min_depth=view.near)
