"""KITTI data layer: the depth-aligned LiDAR image transforms and the info-file converter."""
from . import transforms  # noqa: F401  (registers the pipeline transforms)
