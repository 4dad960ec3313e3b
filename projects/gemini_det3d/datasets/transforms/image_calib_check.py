"""Does an image belong to its calibration? Its principal point must sit near the image centre.

A rectified camera's principal point (where the optical axis meets the image) lies close to
the image centre. KITTI's camera 2 on its five calibration days (all object-benchmark frames
come from them; P2 principal point (cx, cy) and image W x H):

=========== ================== =========== ============================
day         (cx, cy)           W x H       off-centre (of W / of H)
=========== ================== =========== ============================
2011_09_26  (609.56, 172.85)   1242 x 375  0.9 % / 3.9 %
2011_09_28  (604.08, 180.51)   1224 x 370  0.6 % / 1.2 %
2011_09_29  (600.39, 181.51)   1238 x 374  1.5 % / 1.5 %
2011_09_30  (601.89, 183.11)   1226 x 370  0.9 % / 0.5 %
2011_10_03  (607.19, 185.22)   1241 x 376  1.1 % / 0.7 %
=========== ================== =========== ============================

An image stored at another size than its calibration (a half-size copy with the full-size
P2, say), or a calibration of another camera, moves the principal point far from the centre:
with a full-size KITTI P2, a half-size image puts it 48 % of the width off-centre. The check
accepts up to :data:`MAX_PRINCIPAL_POINT_OFFSET` = 10 % of each side: 2.5 times KITTI's worst
(3.9 %), so every real frame and every synthetic one (whose principal point is KITTI's
jittered by ~2 px) passes, while an image rescaled against its calibration by a factor
outside about 0.82-1.24, or cropped by more than about a sixth of a side on one edge, fails.
"""
from typing import Optional, Tuple

import numpy as np

from ...errors import GeminiInputError

MAX_PRINCIPAL_POINT_OFFSET = 0.1  # of the image width (for cx) and height (for cy); see above


class ImageCalibMismatchError(GeminiInputError):
    """An image whose size disagrees with the calibration it is projected with."""

    def __init__(self, message: str):
        # A DataLoader worker's exception is re-raised in the main process as
        # type(exc)('Caught ... in DataLoader worker ...\nOriginal Traceback ...\n<Type>: <msg>'):
        # keep only the original one-line message, so the command line still prints one line.
        if '\nOriginal Traceback' in message:
            last = message.rstrip().splitlines()[-1]
            message = last.split(f'{type(self).__name__}: ', 1)[-1]
        super().__init__(message)


def principal_point(lidar2img: np.ndarray) -> Tuple[float, float]:
    """The principal point ``(cx, cy)`` (pixels) of a LiDAR-to-image projection.

    ``lidar2img[:3, :3] = K @ R`` with ``K`` upper triangular (``K[2, 2] = 1`` up to scale)
    and ``R`` a rotation, so ``M @ M.T = K @ K.T`` whose last column is ``K``'s last column
    ``(cx, cy, 1)`` (times the scale): exact for any rotation, focal lengths and skew.

    Args:
        lidar2img (np.ndarray): [4, 4] or [3, 4] projection (KITTI: P2 @ R0_rect @ Tr_velo_to_cam).
    """
    m = np.asarray(lidar2img, dtype=np.float64)[:3, :3]
    kkt = m @ m.T
    return float(kkt[0, 2] / kkt[2, 2]), float(kkt[1, 2] / kkt[2, 2])


def check_image_matches_calib(lidar2img: np.ndarray, image_hw: Tuple[int, int], image: str,
                              calib: str = 'its calibration',
                              max_offset: Optional[float] = MAX_PRINCIPAL_POINT_OFFSET) -> None:
    """Raise :class:`ImageCalibMismatchError` if the principal point is far from the centre.

    Args:
        lidar2img (np.ndarray): [4, 4] or [3, 4] LiDAR-to-pixel projection of the image.
        image_hw (tuple[int, int]): the image's (height, width) as stored.
        image (str): the image file (or frame) to name in the message.
        calib (str): the calibration to name in the message.
        max_offset (float, optional): largest accepted distance of the principal point from
            the centre, as a fraction of the width (x) and of the height (y); None: no check.
    """
    if max_offset is None:
        return
    height, width = int(image_hw[0]), int(image_hw[1])
    cx, cy = principal_point(lidar2img)
    off_x = abs(cx - width / 2) / width
    off_y = abs(cy - height / 2) / height
    if np.isfinite([off_x, off_y]).all() and max(off_x, off_y) <= max_offset:
        return
    raise ImageCalibMismatchError(
        f'{image}: image is {width}x{height} (WxH) but {calib} puts the principal point at '
        f'({cx:.1f}, {cy:.1f}), {off_x:.0%} of the width and {off_y:.0%} of the height from '
        f'the image centre ({width / 2:.1f}, {height / 2:.1f}); at most {max_offset:.0%} is '
        'accepted: the image was resized or cropped after calibration, or the calibration '
        'belongs to another camera')
