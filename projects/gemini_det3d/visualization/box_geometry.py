"""3D boxes as corners and edges (mmdet3d's LiDAR box convention).

A box is ``(x, y, z, l, w, h, yaw)`` in the LiDAR frame with ``(x, y, z)`` the BOTTOM centre,
``l`` along the heading, as mmdet3d's ``LiDARInstance3DBoxes``. Corners come from mmdet3d
itself, in its order: indices 0-3 are the rear face (local x = -l/2), 4-7 the front face.
Two more points make the heading visible from every view, the bird's-eye one included: the
top face's centre (8) and the middle of the top front edge (9), joined by a line.
"""
import numpy as np

# Indices into box_outline_points: the 12 edges of the box, then the heading tick.
BOX_EDGES = np.array([(0, 1), (1, 2), (2, 3), (3, 0),      # rear face
                      (4, 5), (5, 6), (6, 7), (7, 4),      # front face
                      (0, 4), (1, 5), (2, 6), (3, 7),      # rear to front
                      (8, 9)], dtype=np.int64)             # heading: top centre -> front
POINTS_PER_BOX = 10


def as_box_array(boxes) -> np.ndarray:
    """Boxes of any common form as a float64 array.

    Args:
        boxes: ``None``, an mmdet3d ``BaseInstance3DBoxes`` (LiDAR mode), a tensor or an
            array-like of shape [M, >=7] ``(x, y, z, l, w, h, yaw, ...)``.

    Returns:
        np.ndarray: [M, 7].
    """
    if boxes is None:
        return np.zeros((0, 7))
    if hasattr(boxes, 'tensor'):  # mmdet3d box structure
        boxes = boxes.tensor
    if hasattr(boxes, 'detach'):
        boxes = boxes.detach().cpu().numpy()
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 7))
    if array.ndim != 2 or array.shape[1] < 7:
        raise ValueError(f'boxes must have shape (M, 7) (x y z l w h yaw), got {array.shape}')
    return array[:, :7]


def box_corners(boxes) -> np.ndarray:
    """The 8 corners of each box, computed by mmdet3d's ``LiDARInstance3DBoxes.corners``.

    Returns:
        np.ndarray: [M, 8, 3] float64 corners in the LiDAR frame.
    """
    import torch
    from mmdet3d.structures import LiDARInstance3DBoxes
    array = as_box_array(boxes)
    if len(array) == 0:
        return np.zeros((0, 8, 3))
    corners = LiDARInstance3DBoxes(torch.as_tensor(array, dtype=torch.float32)).corners
    return corners.numpy().astype(np.float64)


def box_outline_points(boxes) -> np.ndarray:
    """The corners plus the two heading-tick points of each box.

    Returns:
        np.ndarray: [M, 10, 3]: corners 0-7, top face centre, middle of the top front edge.
    """
    corners = box_corners(boxes)
    top_centre = corners[:, [1, 2, 5, 6]].mean(axis=1, keepdims=True)
    top_front = corners[:, [5, 6]].mean(axis=1, keepdims=True)
    return np.concatenate([corners, top_centre, top_front], axis=1)


def box_edge_segments(boxes) -> np.ndarray:
    """Every drawn line of every box (edges and heading tick) as a 3D segment.

    Returns:
        np.ndarray: [M * len(BOX_EDGES), 2, 3] segment end points.
    """
    return box_outline_points(boxes)[:, BOX_EDGES].reshape(-1, 2, 3)
