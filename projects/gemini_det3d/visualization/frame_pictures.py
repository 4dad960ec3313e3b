"""Write the three pictures of a frame: ``{name}_bev.png``, ``{name}_chase.png`` (scan with
boxes, Open3D) and ``{name}_camera.png`` (image with projected boxes and the depth grid)."""
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import GeminiInputError
from .frame import VisFrame
from .image_overlay import render_camera_view
from .views import KITTI_BEV_RANGE, bev_view, chase_view

BACKENDS = ('auto', 'open3d', 'software')
PICTURES = ('bev', 'chase', 'camera')  # the scan from above and from behind, the camera image
DEFAULT_SIZE = (1000, 800)  # width, height of the scan views (one size: one Open3D renderer)


def resolve_backend(backend: str = 'auto') -> str:
    """``'open3d'`` where its offscreen renderer works, else ``'software'`` (with a warning
    line for ``'auto'``; an error for an explicit ``'open3d'``)."""
    if backend not in BACKENDS:
        raise GeminiInputError(f'renderer must be one of {BACKENDS}, got {backend!r}')
    if backend == 'software':
        return backend
    try:
        import open3d  # noqa: F401
    except ImportError as exc:
        ok, reason = False, f'open3d cannot be imported ({exc})'
    else:
        from .open3d_render import offscreen_available
        ok, reason = offscreen_available()
    if ok:
        return 'open3d'
    if backend == 'open3d':
        raise GeminiInputError(f'Open3D offscreen rendering is unavailable: {reason}')
    print(f'warning: Open3D offscreen rendering is unavailable ({reason}); drawing the scan '
          'views with the software renderer instead', file=sys.stderr)
    return 'software'


class FramePictureWriter:
    """Renders frames to PNG files.

    Args:
        backend: ``'auto'`` (Open3D, else software), ``'open3d'`` or ``'software'``.
        bev_range: (x_min, y_min, x_max, y_max) shown in the BEV (default: KITTI's range).
        color_by: point colours, ``'height'`` or ``'reflectance'``.
        size: (width, height) of the scan views.
        pictures: which of :data:`PICTURES` to write.
    """

    def __init__(self, backend: str = 'auto', bev_range: Optional[Sequence[float]] = None,
                 color_by: str = 'height', size=DEFAULT_SIZE, point_size: float = 2.0,
                 line_width: float = 3.0, pictures: Sequence[str] = PICTURES):
        unknown = sorted(set(pictures) - set(PICTURES))
        if unknown or not pictures:
            raise GeminiInputError(f'pictures must be some of {PICTURES}, got {tuple(pictures)}')
        self.pictures = tuple(name for name in PICTURES if name in pictures)
        width, height = size
        self.views = {name: view for name, view in (
            ('bev', bev_view(bev_range or KITTI_BEV_RANGE, width, height)),
            ('chase', chase_view(width, height))) if name in self.pictures}
        # no scan view, no renderer to probe for
        self.backend = resolve_backend(backend) if self.views else 'none'
        self.color_by = color_by
        self.point_size = point_size
        self.line_width = line_width

    def render_scan_view(self, view_name: str, frame: VisFrame) -> np.ndarray:
        """[H, W, 3] uint8 RGB picture of the scan from ``'bev'`` or ``'chase'``."""
        view = self.views[view_name]
        if self.backend == 'open3d':
            from .open3d_render import render_view_open3d
            return render_view_open3d(view, frame.points, frame.gt_boxes, frame.pred_boxes,
                                      self.color_by, self.point_size, self.line_width)
        from .software_render import render_view_software
        return render_view_software(view, frame.points, frame.gt_boxes, frame.pred_boxes,
                                    self.color_by, int(round(self.point_size)),
                                    int(round(self.line_width)))

    def write(self, frame: VisFrame, out_dir) -> Dict[str, Path]:
        """Write the frame's pictures; returns ``{name: path}`` for those of ``pictures``
        (``'bev'``, ``'chase'``, ``'camera'``; no camera picture for a frame without an image)."""
        import cv2
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        pictures = {name: self.render_scan_view(name, frame)[..., ::-1] for name in self.views}
        if ('camera' in self.pictures and frame.image_bgr is not None
                and frame.lidar2img is not None):
            pictures['camera'] = render_camera_view(frame.image_bgr, frame.points,
                                                    frame.lidar2img, frame.gt_boxes,
                                                    frame.pred_boxes)
        paths = {}
        for name, image_bgr in pictures.items():
            path = out_dir / f'{frame.name}_{name}.png'
            if not cv2.imwrite(str(path), image_bgr):
                raise GeminiInputError(f'{path}: could not write the picture')
            paths[name] = path
        return paths


def write_frames(frames, out_dir, writer: Optional[FramePictureWriter] = None,
                 progress: bool = True) -> Dict[str, Dict[str, Path]]:
    """Render every frame of an iterable (with a ``len``) with a progress bar."""
    from tqdm import tqdm
    writer = writer or FramePictureWriter()
    written = {}
    bar = tqdm(frames, total=len(frames), desc=f'pictures ({writer.backend})', unit='frame',
               disable=not progress)
    for frame in bar:
        written[frame.name] = writer.write(frame, out_dir)
    return written


def render_dataset_results(cfg, results, out_dir, split: str = 'test',
                           num: Optional[int] = None, score_thr: float = 0.3,
                           backend: str = 'auto', pictures: Sequence[str] = PICTURES
                           ) -> Dict[str, Dict[str, Path]]:
    """Pictures (some of :data:`PICTURES`) of a split's frames with the predictions of a
    results ``.pkl`` (used by ``tools/test.py --show-dir``)."""
    from .dataset_frame_source import DatasetFrames, bev_range_of
    frames = DatasetFrames(cfg, split, results=results, num=num, score_thr=score_thr)
    writer = FramePictureWriter(backend, bev_range=bev_range_of(cfg), pictures=pictures)
    written = write_frames(frames, out_dir, writer)
    print(f'{len(written)} frames x {len(writer.pictures)} pictures -> {out_dir}')
    return written
