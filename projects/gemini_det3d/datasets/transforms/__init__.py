"""Pipeline transforms of the multi-modal KITTI pipeline (registered in mmdet3d's TRANSFORMS)."""
from .depth_grid import project_lidar_to_depth_grid
from .lidar_image_dropout import LiDARImageDropout
from .lidar_to_depth_image import LiDARToDepthImage
from .stack_depth_image import StackDepthImage
from . import blank_camera_image, swap_camera_image  # noqa: F401  (the camera probe, tools/probe_camera.py)

__all__ = ['LiDARImageDropout', 'LiDARToDepthImage', 'StackDepthImage', 'project_lidar_to_depth_grid']
