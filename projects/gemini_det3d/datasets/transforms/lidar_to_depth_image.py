"""``LiDARToDepthImage``: the raw scan projected into the raw camera image (pipeline step 1 of 2).

It runs right after the loading transforms, on the raw scan and raw calibration, before any
augmentation. It writes

* ``results['depth_img']``: the float32 ``H x W x C`` grid aligned with ``results['img']``
  (see :mod:`.depth_grid` for the channels and the z-buffer);
* ``results['depth_img_source']``: the projected points that built it (their raw-image
  coordinates, depths and channel values) and the grid recipe, so that
  :class:`StackDepthImage` can re-project them exactly at the image's final size, crop and
  flip instead of resampling the grid (which would mix or drop depths);
* ``results['depth_img_channels']``: the channel names, in order.

Before projecting it checks that the image belongs to the calibration (see
:mod:`.image_calib_check`): a resized image or another camera's calibration would put every
point at the wrong pixel silently, so it stops training / testing with one line naming the
image instead. A scan without points gives an all-zero grid (its detections are empty: see
:class:`~gemini_det3d.detectors.GeminiMVXFasterRCNN`).
"""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmdet3d.registry import TRANSFORMS
from .depth_grid import (DEFAULT_CHANNELS, check_channels, point_channel_values,
                         project_points_to_image, rasterize_nearest)
from .image_calib_check import MAX_PRINCIPAL_POINT_OFFSET, check_image_matches_calib

# Keys that only exist once an augmentation has touched the sample.
_AUGMENTATION_KEYS = ('scale_factor', 'img_crop_offset', 'pcd_rotation', 'pcd_scale_factor',
                      'pcd_trans')


def lidar2img_from_results(results: dict) -> np.ndarray:
    """The raw 4x4 LiDAR-to-pixel projection of the sample's camera.

    ``KittiDataset`` puts ``lidar2img`` (``P2 @ R0_rect @ Tr_velo_to_cam``) in the results;
    otherwise it is ``cam2img @ lidar2cam``.
    """
    if 'lidar2img' in results:
        return np.asarray(results['lidar2img'], dtype=np.float64)
    if 'cam2img' in results and 'lidar2cam' in results:
        cam2img = np.eye(4)
        intrinsics = np.asarray(results['cam2img'], dtype=np.float64)
        cam2img[:intrinsics.shape[0], :intrinsics.shape[1]] = intrinsics
        return cam2img @ np.asarray(results['lidar2cam'], dtype=np.float64)
    raise KeyError('LiDARToDepthImage needs results["lidar2img"] (or "cam2img" and '
                   '"lidar2cam"): load the sample with a dataset whose modality has '
                   'use_camera=True')


def points_as_array(points) -> np.ndarray:
    """[N, D] numpy view of ``results['points']`` (a ``BasePoints``, tensor or array)."""
    if hasattr(points, 'tensor'):
        points = points.tensor
    if hasattr(points, 'numpy'):
        points = points.detach().cpu().numpy()
    return np.asarray(points)


@TRANSFORMS.register_module()
class LiDARToDepthImage(BaseTransform):
    """Project the raw LiDAR scan into the raw image: a depth-aligned multi-channel grid.

    Required keys: ``points``, ``img`` (for the grid size) and ``lidar2img`` (or ``cam2img``
    + ``lidar2cam``). Added keys: ``depth_img``, ``depth_img_source``, ``depth_img_channels``.

    Args:
        channels (Sequence[str]): any of ``'depth'`` (camera z, m), ``'height'`` (LiDAR z, m),
            ``'reflectance'``, ``'mask'`` (1 measured, ``fill_mask_value`` filled, 0 empty).
        min_depth (float): points at or behind this camera depth (metres) are dropped.
        dilation (int): odd k; > 1 fills every empty pixel with the nearest-depth measured
            pixel in its k x k window (a cheap densification that never mixes depths).
        fill_mask_value (float): ``'mask'`` value of a pixel filled by ``dilation``.
        max_principal_point_offset (float, optional): the calibration's principal point may
            lie at most this fraction of the image width / height from the image centre,
            else :class:`ImageCalibMismatchError` (the image does not match its calibration);
            None: no check. The default's reasoning is in :mod:`.image_calib_check`.
    """

    def __init__(self, channels: Sequence[str] = DEFAULT_CHANNELS, min_depth: float = 0.1,
                 dilation: int = 1, fill_mask_value: float = 0.5,
                 max_principal_point_offset: Optional[float] = MAX_PRINCIPAL_POINT_OFFSET
                 ) -> None:
        self.channels = check_channels(channels)
        if dilation < 1 or dilation % 2 != 1:
            raise ValueError(f'dilation must be an odd window size >= 1, got {dilation}')
        self.min_depth = float(min_depth)
        self.dilation = int(dilation)
        self.fill_mask_value = float(fill_mask_value)
        self.max_principal_point_offset = max_principal_point_offset

    def transform(self, results: dict) -> dict:
        touched = [key for key in _AUGMENTATION_KEYS if key in results]
        if touched or results.get('flip') or results.get('transformation_3d_flow'):
            raise RuntimeError(
                'LiDARToDepthImage must see the raw scan and image: put it right after the '
                f'loading transforms, before any augmentation (found {touched or "flip"})')
        points = points_as_array(results['points'])
        lidar2img = lidar2img_from_results(results)
        if 'img' not in results:
            raise KeyError('LiDARToDepthImage needs results["img"] (for the grid size): put '
                           'LoadImageFromFile before it')
        hw = tuple(results['img'].shape[:2])
        check_image_matches_calib(
            lidar2img, hw, results.get('img_path', 'the image'),
            calib="the frame's calibration (lidar2img)", max_offset=self.max_principal_point_offset)
        uv, depth, index = project_points_to_image(points, lidar2img, hw, self.min_depth)
        values = point_channel_values(points[index], depth, self.channels)
        source = dict(uv=uv, depth=depth, values=values, hw=hw, dilation=self.dilation,
                      mask_channel=self.mask_channel, fill_mask_value=self.fill_mask_value)
        results['depth_img'] = render_depth_image(source, hw)
        results['depth_img_source'] = source
        results['depth_img_channels'] = self.channels
        return results

    @property
    def mask_channel(self) -> int:
        return self.channels.index('mask') if 'mask' in self.channels else -1

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(channels={self.channels}, '
                f'min_depth={self.min_depth}, dilation={self.dilation})')


def render_depth_image(source: dict, hw, uv: np.ndarray = None) -> np.ndarray:
    """Z-buffer the recorded points of ``source`` into an ``hw`` grid ([H, W, C] float32).

    ``uv`` [M, 2] overrides the recorded raw-image coordinates (after image augmentation).
    """
    return rasterize_nearest(source['uv'] if uv is None else uv, source['depth'],
                             source['values'], hw, source['dilation'], source['mask_channel'],
                             source['fill_mask_value'])
