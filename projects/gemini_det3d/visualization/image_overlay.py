"""Projected 3D boxes on a picture, and the camera picture with the LiDAR depth grid on top.

mmdet3d's ``Det3DLocalVisualizer.draw_proj_bboxes_3d`` draws the boxes (matplotlib, Agg canvas:
no display needed): 12 edges, front face shaded. Its projection has no near plane (a corner
behind the camera lands mirrored in front), so it gets the boxes wholly in front of it; a box
crossing it has its edges cut there (:func:`project_segments`) and drawn as lines, as is every
box's heading tick (:mod:`.box_geometry`, as in the Open3D views). The software scan views use
the same drawing with a virtual camera. The depth overlay paints exactly the pixels of the
depth grid the model sees; mmdet3d's ``draw_points_on_image`` scatters antialiased markers in
a colormap that holds the box colours.
"""
import warnings
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np

from .box_geometry import BOX_EDGES, as_box_array, box_outline_points
from .style import DEPTH_COLORMAP, DEPTH_RANGE_M, GT_RGB, PRED_RGB, colorize

HEADING_TICK = BOX_EDGES[-1:]  # top centre -> middle of the top front edge


def project_segments(segments: np.ndarray, projection: np.ndarray,
                     min_depth: float = 0.1) -> np.ndarray:
    """Project 3D segments into an image, cut at the near plane.

    Args:
        segments (np.ndarray): [S, 2, 3] end points (LiDAR frame).
        projection (np.ndarray): [4, 4] or [3, 4] world-to-pixel matrix (``lidar2img``), whose
            third output row is the depth.
        min_depth (float): near plane; the parts of segments closer than this are cut off.

    Returns:
        np.ndarray: [K, 2, 2] pixel end points (u, v) of the segments in front, K <= S.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2, 3)
    proj = np.asarray(projection, dtype=np.float64)[:3]
    homog = np.concatenate([segments, np.ones(segments.shape[:2] + (1,))], axis=-1) @ proj.T
    depth = homog[..., 2]                              # [S, 2]
    visible = (depth > min_depth).any(axis=1)
    homog, depth = homog[visible], depth[visible]
    # Move the end point behind the near plane onto it (projection is linear in homogeneous
    # coordinates, so interpolating them equals interpolating the 3D points).
    for end, other in ((0, 1), (1, 0)):
        behind = depth[:, end] <= min_depth
        t = (min_depth - depth[behind, end]) / (depth[behind, other] - depth[behind, end])
        homog[behind, end] += t[:, None] * (homog[behind, other] - homog[behind, end])
        depth[behind, end] = min_depth
    return homog[..., :2] / depth[..., None]


# A power of two: pixels / dpi * dpi is exact in floating point, so a figure of exactly the
# image's size in inches gets exactly its pixels (matplotlib truncates the product).
FIGURE_DPI = 64


@lru_cache(maxsize=1)
def _visualizer():
    """One visualizer (one matplotlib figure), reused: ``set_image`` clears it."""
    from mmdet3d.visualization import Det3DLocalVisualizer
    visualizer = Det3DLocalVisualizer(name='gemini_det3d_boxes')
    visualizer.fig_save.set_dpi(FIGURE_DPI)
    visualizer.dpi = FIGURE_DPI
    return visualizer


def draw_boxes(image_rgb: np.ndarray, boxes_and_colors: Sequence[Tuple[object, tuple]],
               projection: np.ndarray, line_width: float = 2, min_depth: float = 0.1):
    """Draw 3D boxes projected into ``image_rgb`` [H, W, 3] uint8 (not modified).

    Args:
        boxes_and_colors: ``(boxes, rgb)`` pairs, drawn in that order; boxes as
            :func:`.box_geometry.as_box_array` takes them (LiDAR frame).
        projection (np.ndarray): [4, 4] LiDAR-to-pixel matrix (``lidar2img``) whose third
            output row is the depth; ``min_depth`` is its near plane.
        line_width (float): in pixels.

    Returns:
        np.ndarray: [H, W, 3] uint8 RGB picture (the input itself when there is no box).
    """
    from mmdet3d.structures import LiDARInstance3DBoxes
    layers = [(as_box_array(boxes), color) for boxes, color in boxes_and_colors]
    if not any(len(boxes) for boxes, _ in layers):
        return image_rgb
    projection = np.asarray(projection, dtype=np.float64).reshape(4, 4)
    visualizer = _visualizer()
    visualizer.set_image(image_rgb)
    # set_image pads the figure by 0.01 px (against that truncation), which makes Agg resample
    # the image half a pixel off; the exact size gives back every image pixel unchanged
    height, width = image_rgb.shape[:2]
    visualizer.fig_save.set_size_inches(width / FIGURE_DPI, height / FIGURE_DPI)
    points = 72.0 / FIGURE_DPI * line_width  # matplotlib widths are in points
    with warnings.catch_warnings():  # boxes reaching out of the picture are normal here
        warnings.filterwarnings('ignore', message='Warning: The .* is out of bounds')
        for boxes, color in filter(lambda layer: len(layer[0]), layers):
            outline = box_outline_points(boxes)                        # [M, 10, 3]
            depth = outline @ projection[2, :3] + projection[2, 3]     # [M, 10]
            in_front = (depth > min_depth).all(axis=1)
            if in_front.any():
                visualizer.draw_proj_bboxes_3d(
                    LiDARInstance3DBoxes(boxes[in_front]), dict(lidar2img=projection),
                    edge_colors=tuple(color), line_widths=points)
            lines = np.concatenate([outline[in_front][:, HEADING_TICK].reshape(-1, 2, 3),
                                    outline[~in_front][:, BOX_EDGES].reshape(-1, 2, 3)])
            pixels = project_segments(lines, projection, min_depth)
            if len(pixels):
                visualizer.draw_lines(pixels[..., 0], pixels[..., 1], colors=tuple(color),
                                      line_widths=points)
    return visualizer.get_image()


def overlay_depth(image: np.ndarray, depth: np.ndarray, valid: np.ndarray,
                  radius: int = 1) -> np.ndarray:
    """Paint valid depth pixels in a colormap (near = bright), grown by ``radius`` pixels
    so single LiDAR pixels stay visible; where grown pixels overlap, the nearer depth wins.

    Args:
        image (np.ndarray): [H, W, 3] uint8 BGR, painted in place.
        depth (np.ndarray): [H, W] metres; valid (np.ndarray): [H, W] bool.
    """
    import cv2
    far = DEPTH_RANGE_M[1]
    nearness = np.where(valid, np.clip(far - depth, 1e-3, None), 0).astype(np.float32)
    if radius > 0:
        kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        nearness = cv2.dilate(nearness, kernel)  # max filter: the nearest point wins
    painted = nearness > 0
    colors = colorize(nearness[painted], (0.0, far), DEPTH_COLORMAP)
    image[painted] = colors[:, ::-1]  # RGB -> BGR
    return image


def depth_grid_of(points: np.ndarray, lidar2img: np.ndarray, hw: Tuple[int, int]):
    """Depth [H, W] and validity [H, W] of the scan in the image (z-buffered).

    Uses the project's own ``project_lidar_to_depth_grid`` (channel 0 depth, last channel
    the mask), the same grid the model sees.
    """
    from ..datasets.transforms.depth_grid import project_lidar_to_depth_grid
    grid = project_lidar_to_depth_grid(points, lidar2img, hw, channels=('depth', 'mask'))
    return grid[..., 0], grid[..., -1] > 0


def render_camera_view(image_bgr: np.ndarray, points: Optional[np.ndarray],
                       lidar2img: np.ndarray, gt_boxes=None, pred_boxes=None,
                       depth_radius: int = 0, thickness: int = 2) -> np.ndarray:
    """The camera picture.

    Args:
        image_bgr (np.ndarray): [H, W, 3] uint8 camera image (not modified).
        points (np.ndarray | None): [N, >=3] LiDAR scan for the depth overlay.
        lidar2img (np.ndarray): [4, 4] LiDAR-to-pixel projection of this image.
        gt_boxes, pred_boxes: LiDAR boxes [M, 7] (or mmdet3d boxes), drawn in
            :data:`GT_RGB` and :data:`PRED_RGB`.
        thickness (int): box line width in pixels.

    Returns:
        np.ndarray: [H, W, 3] uint8 BGR picture.
    """
    canvas = np.ascontiguousarray(image_bgr[..., :3], dtype=np.uint8).copy()
    if points is not None and len(points):
        depth, valid = depth_grid_of(points, lidar2img, canvas.shape[:2])
        overlay_depth(canvas, depth, valid, depth_radius)
    picture = draw_boxes(canvas[..., ::-1], [(gt_boxes, GT_RGB), (pred_boxes, PRED_RGB)],
                         lidar2img, thickness)
    return np.ascontiguousarray(picture[..., ::-1])
