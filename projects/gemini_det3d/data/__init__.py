"""KITTI files: strict readers / writers, and the synthetic KITTI-format scene generator."""
from .errors import KittiFormatError  # noqa: F401
from .kitti_io import (KITTI_CLASSES, check_image, lidar2cam, lidar2img, read_calib,  # noqa: F401
                       read_imageset, read_label, read_velodyne, validate_kitti_split,
                       write_calib, write_image, write_imageset, write_label, write_velodyne)
from .synthetic_kitti import generate_frame, make_synthetic_kitti  # noqa: F401
