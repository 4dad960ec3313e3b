"""``LiDARImageDropout``: in training, now and then a frame whose LiDAR image is empty.

Why: the two-stream backbone reads the RGB picture and the LiDAR image (the scan projected
into the camera). The LiDAR image is the easier input for a from-scratch backbone (depth and
reflectance name objects at once), so trained on both it learns to lean on the LiDAR image
and the RGB stream is left idle: the camera-swap probe (``tools/probe_camera.py``) then shows
almost no drop. Emptying the LiDAR image of some training frames (modality dropout, as in
ModDrop, Neverova et al. 2015) leaves the picture as the only source of the image features on
those frames, so the image branch has to learn to read it. The points, the voxel branch and
the labels are untouched: only the image branch's LiDAR stream loses its input.

"Empty" is what the pipeline gives a pixel that no point hits: 0 in every LiDAR channel after
``StackDepthImage``'s normalisation (the LiDAR channels' means are 0). The draw is one
``np.random.rand()`` per frame, as mmcv's ``RandomFlip`` draws, so the per-epoch seeding
(``EpochSeedHook``) makes it repeatable and exact resume holds. Training pipeline only.
"""
import numpy as np
from mmcv.transforms import BaseTransform

from mmdet3d.registry import TRANSFORMS

RGB_CHANNELS = 3


@TRANSFORMS.register_module()
class LiDARImageDropout(BaseTransform):
    """With probability ``prob``, zero the LiDAR channels of the stacked image.

    Required keys: ``img`` (H x W x (3 + C) float32, from ``StackDepthImage``, normalised).
    Modified keys: ``img`` (channels 3: set to 0 when dropped), ``depth_img`` (H x W x C, set
    to 0 when dropped, so pictures of the frame show what the model saw).
    Added keys: ``lidar_image_dropped`` (bool).

    Args:
        prob (float): probability that a frame's LiDAR image is emptied, in [0, 1].
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f'LiDARImageDropout: prob must be in [0, 1], got {prob}')
        self.prob = float(prob)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3 or img.shape[2] <= RGB_CHANNELS:
            raise ValueError(
                f'LiDARImageDropout expects the stacked H x W x (3 + C) image of '
                f'StackDepthImage (put it after StackDepthImage), got shape {img.shape}')
        dropped = bool(np.random.rand() < self.prob)
        if dropped:
            img = img.copy()
            img[..., RGB_CHANNELS:] = 0
            results['img'] = img
            if 'depth_img' in results:
                results['depth_img'] = np.zeros_like(results['depth_img'])
        results['lidar_image_dropped'] = dropped
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'
