from .inference import detect_kitti_frame, lidar_boxes_to_kitti_objects

__all__ = ['detect_kitti_frame', 'lidar_boxes_to_kitti_objects']
