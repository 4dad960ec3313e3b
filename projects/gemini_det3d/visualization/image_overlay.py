"""Camera picture: the image with the projected 3D boxes and the LiDAR depth grid on top.

Boxes are drawn edge by edge: each 3D edge is clipped at the camera's near plane before it is
projected (an edge that passes behind the camera would otherwise wrap around the image),
then clipped to the image. The same functions draw the software fallback's BEV and chase
views, with a virtual camera's projection in place of ``lidar2img``.
"""
from typing import Optional, Tuple

import numpy as np

from .box_geometry import box_edge_segments
from .style import DEPTH_COLORMAP, DEPTH_RANGE_M, GT_RGB, PRED_RGB, colorize, rgb_to_bgr

_SUBPIXEL_BITS = 4  # cv2.line's ``shift``: end points with 1/16 pixel precision


def project_segments(segments: np.ndarray, projection: np.ndarray, hw: Tuple[int, int],
                     min_depth: float = 0.1) -> np.ndarray:
    """Project 3D segments into an image, clipped to the near plane and to the image.

    Args:
        segments (np.ndarray): [S, 2, 3] end points (LiDAR frame).
        projection (np.ndarray): [4, 4] or [3, 4] world-to-pixel matrix (``lidar2img``), whose
            third output row is the depth.
        hw (tuple[int, int]): image height and width.
        min_depth (float): near plane; the parts of segments closer than this are cut off.

    Returns:
        np.ndarray: [K, 2, 2] pixel end points (u, v) of the visible segments, K <= S.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2, 3)
    if len(segments) == 0:
        return np.zeros((0, 2, 2))
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
    pixels = homog[..., :2] / depth[..., None]
    return clip_segments_to_image(pixels, hw)


def clip_segments_to_image(pixels: np.ndarray, hw: Tuple[int, int], margin: float = 2.0):
    """Liang-Barsky clipping of 2D segments to the image rectangle (plus a margin).

    Args:
        pixels (np.ndarray): [S, 2, 2] end points (u, v).

    Returns:
        np.ndarray: [K, 2, 2] the parts inside, K <= S (segments fully outside dropped).
    """
    height, width = hw
    start, delta = pixels[:, 0], pixels[:, 1] - pixels[:, 0]
    t_low, t_high = np.zeros(len(pixels)), np.ones(len(pixels))
    bounds = ((0, -margin, width + margin), (1, -margin, height + margin))
    for axis, low, high in bounds:
        sides = ((-delta[:, axis], start[:, axis] - low), (delta[:, axis], high - start[:, axis]))
        for p, q in sides:
            parallel = np.abs(p) < 1e-12
            with np.errstate(divide='ignore', invalid='ignore'):
                r = q / np.where(parallel, 1.0, p)
            t_high = np.where(parallel & (q < 0), -1.0, t_high)  # parallel and outside
            t_low = np.where(~parallel & (p < 0), np.maximum(t_low, r), t_low)
            t_high = np.where(~parallel & (p > 0), np.minimum(t_high, r), t_high)
    keep = t_low <= t_high
    clipped = np.stack([start + t_low[:, None] * delta, start + t_high[:, None] * delta], axis=1)
    return clipped[keep]


def draw_segments(image: np.ndarray, pixels: np.ndarray, color_rgb, thickness: int = 2):
    """Draw 2D segments [K, 2, 2] onto a BGR image in place."""
    import cv2
    color = rgb_to_bgr(color_rgb)
    scaled = np.round(pixels * (1 << _SUBPIXEL_BITS)).astype(np.int64)
    for (u0, v0), (u1, v1) in scaled:
        cv2.line(image, (int(u0), int(v0)), (int(u1), int(v1)), color, thickness,
                 cv2.LINE_AA, _SUBPIXEL_BITS)
    return image


def draw_boxes(image: np.ndarray, boxes, projection: np.ndarray, color_rgb,
               thickness: int = 2, min_depth: float = 0.1) -> np.ndarray:
    """Draw 3D boxes (see :func:`.box_geometry.as_box_array`) projected into a BGR image."""
    segments = box_edge_segments(boxes)
    pixels = project_segments(segments, projection, image.shape[:2], min_depth)
    return draw_segments(image, pixels, color_rgb, thickness)


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

    Returns:
        np.ndarray: [H, W, 3] uint8 BGR picture.
    """
    canvas = np.ascontiguousarray(image_bgr[..., :3], dtype=np.uint8).copy()
    if points is not None and len(points):
        depth, valid = depth_grid_of(points, lidar2img, canvas.shape[:2])
        overlay_depth(canvas, depth, valid, depth_radius)
    draw_boxes(canvas, gt_boxes, lidar2img, GT_RGB, thickness)
    draw_boxes(canvas, pred_boxes, lidar2img, PRED_RGB, thickness)
    return canvas
