"""``SwapCameraImage``: each frame sees another frame's camera picture (the camera probe).

A model that uses the camera must change its boxes when a frame's picture shows another
scene; one that ignores it must not (``tools/probe_camera.py``). The swap goes right after
``LoadImageFromFile`` and before ``LiDARToDepthImage``, so the LiDAR channels, the points, the
calibration and the labels stay the frame's own: only the RGB shows another frame.

The frames are paired by a derangement of the split (:func:`derangement`): no frame keeps its
own picture, and the same seed gives the same pairs.
"""
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmdet3d.registry import TRANSFORMS


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A uniformly drawn permutation of ``range(n)`` with no fixed point, from ``seed``.

    Returns:
        np.ndarray: [n] int64, ``perm[i] != i`` for every ``i``; frame ``i`` gets the picture
        of frame ``perm[i]``.

    Raises:
        ValueError: ``n < 2`` (a single frame has no other frame to borrow from).
    """
    if n < 2:
        raise ValueError(f'a derangement needs at least 2 frames, got {n}')
    rng = np.random.default_rng(seed)
    identity = np.arange(n)
    while True:  # about e (2.7) draws on average, for any n
        perm = rng.permutation(n)
        if not np.any(perm == identity):
            return perm


def _key(path: str) -> str:
    return osp.normpath(str(path))


@TRANSFORMS.register_module()
class SwapCameraImage(BaseTransform):
    """Replace ``results['img']`` by the camera picture of another frame of the split.

    The frame is found by its ``img_path`` in ``img_paths``; at position ``i`` it gets the
    picture at ``img_paths[permutation[i]]``, decoded as ``LoadImageFromFile`` decodes (give
    the same ``color_type`` / ``imdecode_backend`` / ``backend_args``) and, when its size
    differs (KITTI's sizes vary by a few pixels between calibration days), resized
    (bilinear) to this frame's ``H x W`` with this frame's dtype, so ``img_shape`` and the
    frame's calibration still agree.

    Required keys: ``img`` (H x W x 3, as loaded), ``img_path``.
    Modified keys: ``img`` (same H x W x 3 and dtype, another frame's pixels).
    Added keys: ``camera_swap_path`` (the path of the picture that was put in).
    Untouched: ``img_path``, ``img_shape``, ``ori_shape``, ``points``, the calibration, labels.

    Args:
        img_paths (Sequence[str]): the camera picture of every frame of the split, in the
            dataset's order (as ``get_data_info(i)['img_path']`` gives them).
        permutation (Sequence[int]): [len(img_paths)]; frame ``i`` shows picture
            ``permutation[i]`` (e.g. :func:`derangement`).
        color_type, imdecode_backend, backend_args: as ``LoadImageFromFile``'s.
    """

    def __init__(self, img_paths: Sequence[str], permutation: Sequence[int],
                 color_type: str = 'color', imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        if len(img_paths) != len(permutation):
            raise ValueError(f'SwapCameraImage: {len(permutation)} permutation entries for '
                             f'{len(img_paths)} image paths')
        if sorted(int(p) for p in permutation) != list(range(len(img_paths))):
            raise ValueError('SwapCameraImage: permutation must hold each of '
                             f'0..{len(img_paths) - 1} exactly once')
        self.img_paths = [str(p) for p in img_paths]
        self.permutation = [int(p) for p in permutation]
        self.position = {_key(p): i for i, p in enumerate(self.img_paths)}
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def source_path(self, img_path: str) -> str:
        """The path of the picture that the frame of ``img_path`` is given."""
        pos = self.position.get(_key(img_path))
        if pos is None:
            raise KeyError(f'SwapCameraImage: {img_path} is not among the {len(self.img_paths)} '
                           'image paths of the split it was given')
        return self.img_paths[self.permutation[pos]]

    def transform(self, results: dict) -> dict:
        import mmcv
        import mmengine.fileio as fileio
        own = results['img']
        path = self.source_path(results['img_path'])
        other = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                                 flag=self.color_type, backend=self.imdecode_backend)
        if other is None:
            raise ValueError(f'SwapCameraImage: cannot decode {path}')
        if other.shape[:2] != own.shape[:2]:
            other = mmcv.imresize(other, (own.shape[1], own.shape[0]), interpolation='bilinear',
                                  backend='cv2')
        results['img'] = np.ascontiguousarray(other.astype(own.dtype, copy=False))
        results['camera_swap_path'] = path
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({len(self.img_paths)} frames, deranged)'
