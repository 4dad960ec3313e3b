"""A frame straight from KITTI files (velodyne, calib, image_2, label_2), read strictly."""
from pathlib import Path

from ..data import kitti_io
from ..data.errors import KittiFormatError
from .frame import VisFrame, kitti_objects_to_lidar_boxes


def read_image_bgr(path):
    """Decode an image; a missing, truncated or undecodable file is one line naming it."""
    import cv2
    kitti_io.check_image(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise KittiFormatError(path, 'not a readable image')
    return image


def load_kitti_frame(frame_dir, idx: str, pred_dir=None, score_thr: float = 0.0,
                     with_label: bool = True) -> VisFrame:
    """Read one frame of a KITTI split folder.

    Args:
        frame_dir: the split folder holding ``velodyne/ calib/ image_2/ label_2/``
            (e.g. ``data/kitti/training``).
        idx: the frame id (``'000003'`` or ``3``).
        pred_dir: optional folder of KITTI label-format predictions (``{idx}.txt``, with a
            score column or without); a frame without its file has no predictions.
        score_thr: predictions below this score are not drawn.
        with_label: read ``label_2/{idx}.txt`` (skipped when the folder has no ``label_2``).
    """
    name = kitti_io.frame_name(int(idx) if str(idx).isdigit() else idx)
    base = Path(frame_dir)
    if not base.is_dir():
        raise KittiFormatError(base, 'KITTI frame folder not found')
    points = kitti_io.read_velodyne(base / 'velodyne' / f'{name}.bin')
    calib = kitti_io.read_calib(base / 'calib' / f'{name}.txt')
    lidar2cam = kitti_io.lidar2cam(calib)
    image = read_image_bgr(base / 'image_2' / f'{name}.png')
    gt_boxes = None
    label_path = base / 'label_2' / f'{name}.txt'
    if with_label and (base / 'label_2').is_dir():
        gt_boxes, _, _ = kitti_objects_to_lidar_boxes(kitti_io.read_label(label_path), lidar2cam)
    pred_boxes, pred_scores = None, ()
    if pred_dir is not None:
        pred_boxes, pred_scores = read_kitti_predictions(pred_dir, name, lidar2cam, score_thr)
    return VisFrame(name=name, points=points, image_bgr=image, lidar2img=kitti_io.lidar2img(calib),
                    gt_boxes=gt_boxes, pred_boxes=pred_boxes, pred_scores=pred_scores)


def read_kitti_predictions(pred_dir, name: str, lidar2cam, score_thr: float = 0.0):
    """Boxes [K, 7] (LiDAR frame) and scores [K] of ``{pred_dir}/{name}.txt``."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise KittiFormatError(pred_dir, 'prediction folder not found')
    path = pred_dir / f'{name}.txt'
    if not path.is_file():
        return None, ()
    boxes, scores, _ = kitti_objects_to_lidar_boxes(kitti_io.read_label(path), lidar2cam)
    keep = scores >= score_thr
    return boxes[keep], scores[keep]
