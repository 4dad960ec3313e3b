"""Pictures of detections: the scan with ground-truth (green) and predicted (red) boxes from a
bird's-eye and a chase view (Open3D offscreen, software fallback), and the camera image with
projected boxes and the LiDAR depth grid. See ``tools/visualize.py``."""
from .box_geometry import BOX_EDGES, as_box_array, box_corners
from .frame import VisFrame, kitti_objects_to_lidar_boxes
from .frame_pictures import FramePictureWriter, render_dataset_results, write_frames
from .image_overlay import render_camera_view
from .style import GT_RGB, PRED_RGB

__all__ = ['BOX_EDGES', 'as_box_array', 'box_corners', 'VisFrame', 'kitti_objects_to_lidar_boxes',
           'FramePictureWriter', 'render_dataset_results', 'write_frames', 'render_camera_view',
           'GT_RGB', 'PRED_RGB']
