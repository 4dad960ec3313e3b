"""``StrictKittiDataset``: mmdet3d's KittiDataset, whose info file is checked before it is read."""
from mmdet3d.datasets import KittiDataset
from mmdet3d.registry import DATASETS

from .info_file_check import check_kitti_info_file


@DATASETS.register_module()
class StrictKittiDataset(KittiDataset):
    """``KittiDataset`` that stops with one line on a missing, unreadable or outdated info file.

    Same arguments and samples as mmdet3d's ``KittiDataset``. Before the infos are parsed,
    :func:`check_kitti_info_file` checks ``ann_file``: an mmdet3d 0.x info file (a list of
    frames), a file of another data set or frames without ``lidar_points`` (or without the
    ``default_cam_key`` image when the modality uses the camera) raise ``InfoFileError``
    naming the file and how to remake it.
    """

    def load_data_list(self):
        use_camera = bool((self.modality or {}).get('use_camera'))
        check_kitti_info_file(self.ann_file, self.data_root,
                              camera_key=self.default_cam_key if use_camera else None)
        # mmengine reads the file again: a second read of a pickle costs less than a copy
        # of BaseDataset's parsing loop here
        return super().load_data_list()
