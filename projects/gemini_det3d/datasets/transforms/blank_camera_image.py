"""``BlankCameraImage``: the camera picture becomes its own mean colour (the camera probe).

With no picture content left, a model that reads the camera loses what it took from it,
while the image statistics (brightness, colour balance) it was normalised for stay the
frame's own (``tools/probe_camera.py``). It goes right after ``LoadImageFromFile`` and before
``LiDARToDepthImage``, so points, LiDAR channels, calibration and labels are untouched.
"""
import numpy as np
from mmcv.transforms import BaseTransform

from mmdet3d.registry import TRANSFORMS


@TRANSFORMS.register_module()
class BlankCameraImage(BaseTransform):
    """Replace every pixel of ``results['img']`` by the image's per-channel mean.

    Required keys: ``img`` (H x W x 3, any dtype).
    Modified keys: ``img``: H x W x 3 float32, every pixel equal to the mean colour
    ``img.reshape(-1, 3).mean(0)`` of the picture as loaded (float32, not rounded back to
    uint8, so the mean is exact; ``Resize`` and ``StackDepthImage`` take float32).
    Untouched: ``img_shape``, ``ori_shape`` and every non-image key.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        mean = img.reshape(-1, img.shape[-1] if img.ndim == 3 else 1).astype(np.float64).mean(0)
        results['img'] = np.broadcast_to(mean.astype(np.float32), img.shape).copy()
        return results
