"""Where a raw-image pixel coordinate ends up after the pipeline's image augmentations.

mmdet3d records image-space augmentations in the sample's metadata, and PointFusion
(``mmdet3d.models.layers.fusion_layers.point_sample``) maps a projected point through them in
this fixed order: resize by ``scale_factor`` -> subtract ``img_crop_offset`` -> if ``flip``,
mirror about the width of ``img_shape``. Using exactly the same recipe for the LiDAR image
keeps its pixels where PointFusion and the resized / cropped / flipped RGB expect them
(the pipeline must apply resize, crop and flip in that order, as mmdet3d assumes).
"""
from typing import Tuple

import numpy as np


def image_aug_params(results: dict) -> Tuple[np.ndarray, np.ndarray, bool, int]:
    """``(scale [2] (w, h), crop_offset [2] (x, y), flip, flip_width)`` from the metadata."""
    scale = np.ones(2)
    if results.get('scale_factor') is not None:
        scale = np.asarray(results['scale_factor'], dtype=np.float64).ravel()[:2]
    offset = np.zeros(2)
    if results.get('img_crop_offset') is not None:
        offset = np.asarray(results['img_crop_offset'], dtype=np.float64).ravel()[:2]
    flip = bool(results.get('flip', False))
    if flip and results.get('flip_direction', 'horizontal') != 'horizontal':
        raise ValueError(f'only horizontal image flips can be undone by PointFusion, got '
                         f'flip_direction={results.get("flip_direction")!r}')
    flip_width = int(results['img_shape'][1]) if 'img_shape' in results else int(
        results['img'].shape[1])
    return scale, offset, flip, flip_width


def is_identity(results: dict) -> bool:
    """True when no image augmentation moved the pixels."""
    scale, offset, flip, _ = image_aug_params(results)
    return bool(np.all(scale == 1) and np.all(offset == 0) and not flip)


def apply_image_aug(uv: np.ndarray, results: dict) -> np.ndarray:
    """Map raw-image coordinates to augmented-image coordinates.

    Args:
        uv (np.ndarray): [M, 2] continuous (u, v) in the raw image.
        results (dict): the sample, holding the augmentation metadata.

    Returns:
        np.ndarray: [M, 2] float64 coordinates in the augmented image.
    """
    scale, offset, flip, flip_width = image_aug_params(results)
    moved = uv * scale - offset
    if flip:
        moved[:, 0] = flip_width - moved[:, 0]
    return moved
