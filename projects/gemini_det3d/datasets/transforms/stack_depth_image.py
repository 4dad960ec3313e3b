"""``StackDepthImage``: the LiDAR image at the final image geometry, stacked onto the RGB.

It runs after every image-space augmentation (resize, crop, flip, photometric) and before
``Pack3DDetInputs``. The points recorded by :class:`LiDARToDepthImage` are re-projected at the
augmented image's size, crop and flip (the same recipe PointFusion uses), then z-buffered:
nothing is interpolated (depths never mix) and no point is lost to subsampling when the image
shrinks (each pixel keeps its nearest point). The result replaces ``results['img']`` by an
``H x W x (3 + C)`` float32 array, so mmdet3d's ``Pack3DDetInputs`` and
``Det3DDataPreprocessor`` (padding, batching) carry the LiDAR channels unchanged.

Per-channel normalisation happens here, not in the preprocessor: mmengine's
``ImgDataPreprocessor`` (the base of ``Det3DDataPreprocessor``) asserts that ``mean`` / ``std``
have 1 or 3 values. So the model's preprocessor gets ``mean=None, std=None,
bgr_to_rgb=False`` (it then only pads, with 0, which after this normalisation is the mean
colour and "no point" in the LiDAR channels when their mean is 0, exactly what the
preprocessor's own normalise-then-pad would give). ``bgr_to_rgb`` must stay False there in any
case: with more than 3 channels it would keep only channels [2, 1, 0].
"""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmdet3d.registry import TRANSFORMS
from .image_aug_geometry import apply_image_aug, is_identity
from .lidar_to_depth_image import render_depth_image


@TRANSFORMS.register_module()
class StackDepthImage(BaseTransform):
    """Re-project the LiDAR image at the final image geometry and stack it onto ``img``.

    Required keys: ``img`` (H x W x 3), ``depth_img_source`` (from ``LiDARToDepthImage``),
    and the augmentation metadata that mmdet3d / mmcv transforms record (``scale_factor``,
    ``img_crop_offset``, ``flip``, ``flip_direction``, ``img_shape``).
    Modified keys: ``img`` (H x W x (3 + C) float32), ``depth_img`` (H x W x C, final geometry).
    Removed keys: ``depth_img_source``.

    Args:
        bgr_to_rgb (bool): reorder the colour channels from BGR (what ``LoadImageFromFile``
            gives) to RGB before stacking.
        mean (Sequence[float], optional): 3 + C per-channel means (colour channels in the
            output order), subtracted from the stacked image; None: no normalisation.
        std (Sequence[float], optional): 3 + C per-channel standard deviations.
    """

    def __init__(self, bgr_to_rgb: bool = True, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None) -> None:
        if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
            raise ValueError('StackDepthImage: give both mean and std, of equal length, or '
                             'neither')
        self.bgr_to_rgb = bgr_to_rgb
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)

    def transform(self, results: dict) -> dict:
        if 'depth_img_source' not in results:
            raise KeyError('StackDepthImage needs LiDARToDepthImage earlier in the pipeline '
                           '(right after loading the points and the image)')
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'StackDepthImage expects an H x W x 3 colour image, got shape '
                             f'{img.shape} (stacked twice?)')
        source = results.pop('depth_img_source')
        hw = tuple(img.shape[:2])
        if is_identity(results) and hw == tuple(source['hw']):
            depth_img = results['depth_img']
        else:
            depth_img = render_depth_image(source, hw, apply_image_aug(source['uv'], results))
        colour = img[..., ::-1] if self.bgr_to_rgb else img
        stacked = np.concatenate([colour.astype(np.float32), depth_img], axis=2)
        if self.mean is not None:
            if len(self.mean) != stacked.shape[2]:
                raise ValueError(f'StackDepthImage: {len(self.mean)} means for '
                                 f'{stacked.shape[2]} channels (3 colour + '
                                 f'{depth_img.shape[2]} LiDAR)')
            stacked -= self.mean
            stacked /= self.std
            results['img_norm_cfg'] = dict(mean=self.mean, std=self.std,
                                           to_rgb=self.bgr_to_rgb)
        results['img'] = stacked
        results['depth_img'] = depth_img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(bgr_to_rgb={self.bgr_to_rgb}, '
                f'mean={None if self.mean is None else self.mean.tolist()}, '
                f'std={None if self.std is None else self.std.tolist()})')
