"""``StackDepthImage``: the LiDAR image at the final image geometry, stacked onto the RGB (step 2 of 2).

It runs after every image-space augmentation (resize, crop, flip, photometric) and before
``Pack3DDetInputs``. The points recorded by :class:`LiDARToDepthImage` are re-projected at the
augmented image's size, crop and flip (the same recipe PointFusion uses), then z-buffered:
nothing is interpolated (depths never mix) and no point is lost to subsampling when the image
shrinks (each pixel keeps its nearest point). The result replaces ``results['img']`` by an
``H x W x (3 + C)`` float32 array, so mmdet3d's ``Pack3DDetInputs`` and
``Det3DDataPreprocessor`` (normalisation with 3 + C means / stds, padding) carry the LiDAR
channels unchanged. Keep the preprocessor's ``bgr_to_rgb=False``: with more than 3 channels
it would index channels [2, 1, 0] and drop the LiDAR ones; this transform orders the colour
channels instead.
"""
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
    """

    def __init__(self, bgr_to_rgb: bool = True) -> None:
        self.bgr_to_rgb = bgr_to_rgb

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
        results['img'] = np.concatenate([colour.astype(np.float32), depth_img], axis=2)
        results['depth_img'] = depth_img
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(bgr_to_rgb={self.bgr_to_rgb})'
