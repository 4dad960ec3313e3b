"""Is an info ``.pkl`` one that mmdet3d 1.x's KittiDataset reads? One line when it is not.

mmdet3d 1.x reads the "v2" info format that ``tools/create_data.py`` writes: a dict
``{'metainfo': {..., 'dataset': 'kitti', 'info_version': '1.1'}, 'data_list': [per frame:
{'sample_idx', 'lidar_points', 'images', 'instances', ...}]}``. An info file from the
mmdet3d 0.x converter is a plain list of per-frame dicts with ``'image'``, ``'point_cloud'``,
``'calib'`` and ``'annos'``; given to the 1.x data set it ends in a ``TypeError`` traceback
from mmengine. Here it is named as such, with the two ways to get the new format.
"""
import os.path as osp
from typing import Optional, Sequence

from ..errors import GeminiInputError

V0_FRAME_KEYS = ('image', 'point_cloud', 'calib', 'annos')
V2_FRAME_KEYS = ('sample_idx', 'lidar_points')


class InfoFileError(GeminiInputError):
    """One line: the info file and what is wrong with it."""


def _remedy(path: str, data_root: Optional[str]) -> str:
    root = data_root or osp.dirname(path) or '.'
    return (f'rerun python tools/create_data.py kitti --root-path {root.rstrip("/")} (or convert '
            "it with mmdet3d's tools/dataset_converters/update_infos_to_v2.py)")


def _frame_problem(info, camera_key: Optional[str]) -> str:
    if not isinstance(info, dict):
        return f'is a {type(info).__name__}, not a dict'
    missing = [k for k in V2_FRAME_KEYS if k not in info]
    if camera_key and camera_key not in (info.get('images') or {}):
        missing.append(f"images['{camera_key}']")
    return f'has no {", ".join(missing)}' if missing else ''


def check_kitti_info_file(path: str, data_root: Optional[str] = None,
                          camera_key: Optional[str] = None,
                          required_frame_keys: Sequence[str] = ()) -> dict:
    """Load ``path`` and check that it is a KITTI info file of mmdet3d 1.x's format.

    Args:
        path (str): the ``.pkl``.
        data_root (str, optional): the data root, for the re-conversion command in messages.
        camera_key (str, optional): every frame must have this camera (``'CAM2'``) in
            ``images`` (a camera-using data set).
        required_frame_keys: further keys every frame must have.

    Returns:
        dict: the loaded infos (``metainfo`` and ``data_list``).

    Raises:
        InfoFileError: missing, unreadable, of the 0.x format, or frames without their keys.
    """
    import mmengine
    if not osp.isfile(path):
        raise InfoFileError(f'{path}: info file not found: create it with python '
                            f'tools/create_data.py kitti --root-path {data_root or "DATA_ROOT"}')
    try:
        infos = mmengine.load(path)
    except Exception as exc:  # noqa: BLE001  (truncated pickle, another format, ...)
        reason = ' '.join(str(exc).split())[:160] or type(exc).__name__
        raise InfoFileError(f'{path}: cannot read the info file ({reason})') from None
    if isinstance(infos, list) and (not infos or isinstance(infos[0], dict)
                                    and any(k in infos[0] for k in V0_FRAME_KEYS)):
        raise InfoFileError(
            f'{path}: made by an older converter (mmdet3d 0.x: a list of frames with '
            f"'image'/'point_cloud'/'calib'/'annos', no 'metainfo'/'data_list'); "
            + _remedy(path, data_root))
    if not isinstance(infos, dict) or not {'metainfo', 'data_list'} <= set(infos):
        found = (f'a dict with keys {sorted(infos)[:6]}' if isinstance(infos, dict)
                 else f'a {type(infos).__name__}')
        raise InfoFileError(f"{path}: not an mmdet3d 1.x info file (no 'metainfo'/'data_list', "
                            f'found {found}); ' + _remedy(path, data_root))
    dataset = (infos['metainfo'] or {}).get('dataset')
    if dataset not in (None, 'kitti'):
        raise InfoFileError(f'{path}: an info file of the {dataset!r} data set, not KITTI')
    for position, info in enumerate(infos['data_list']):
        problem = _frame_problem(info, camera_key)
        if not problem and isinstance(info, dict):
            absent = [k for k in required_frame_keys if k not in info]
            problem = f'has no {", ".join(absent)}' if absent else ''
        if problem:
            name = info.get('sample_idx', position) if isinstance(info, dict) else position
            raise InfoFileError(f'{path}: data_list[{position}] (frame {name}) {problem}; '
                                + _remedy(path, data_root))
    return infos
