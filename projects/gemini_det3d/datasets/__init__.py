"""KITTI data layer: the depth-aligned LiDAR image transforms, the info-file converter and
``StrictKittiDataset`` (mmdet3d's KittiDataset with a checked info file)."""
from . import transforms  # noqa: F401  (registers the pipeline transforms)
from .info_file_check import InfoFileError, check_kitti_info_file
from .strict_kitti_dataset import StrictKittiDataset

__all__ = ['InfoFileError', 'StrictKittiDataset', 'check_kitti_info_file']
