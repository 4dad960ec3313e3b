"""Strict readers and writers for the files of the KITTI object-detection layout.

mmdet3d's converter (``mmdet3d/.mim/tools/dataset_converters/kitti_data_utils.py``) does the
real conversion, but it parses with ``line.split(' ')`` and positional line indices and fails
with a raw numpy / ``float('')`` traceback, or worse silently misreads, on a damaged file.
These readers are the validation gate run over a split before converting: each one accepts
exactly what mmdet3d can parse correctly and raises :class:`KittiFormatError`, whose message is
one line naming the file and the problem, for everything else.

Conventions (as KITTI and mmdet3d 1.x):

* velodyne ``.bin``: float32 rows ``(x, y, z, reflectance)`` in the LiDAR frame
  (x forward, y left, z up).
* calib ``.txt``: the seven lines ``P0 P1 P2 P3`` (3x4), ``R0_rect`` (3x3),
  ``Tr_velo_to_cam``, ``Tr_imu_to_velo`` (3x4), in that order: mmdet3d reads them by position.
  ``lidar2cam = R0_rect @ Tr_velo_to_cam`` and ``lidar2img = P2 @ lidar2cam`` (all 4x4).
* label ``.txt``: one object per line, 15 fields (16 with a detection score): type,
  truncated, occluded, alpha, 2D box ``x1 y1 x2 y2`` (pixels), dimensions ``h w l`` (metres),
  location ``x y z`` of the box's BOTTOM centre in the rectified camera frame
  (x right, y down, z forward), rotation_y around the camera's y axis. DontCare lines come
  last (mmdet3d numbers the objects assuming so).
"""
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils.atomic_write import atomic_write_bytes
from .errors import KittiFormatError

PathLike = Union[str, os.PathLike]

CALIB_SHAPES = {
    'P0': (3, 4),
    'P1': (3, 4),
    'P2': (3, 4),
    'P3': (3, 4),
    'R0_rect': (3, 3),
    'Tr_velo_to_cam': (3, 4),
    'Tr_imu_to_velo': (3, 4),
}
CALIB_KEYS = tuple(CALIB_SHAPES)  # the order of the lines, which mmdet3d relies on

KITTI_CLASSES = ('Car', 'Van', 'Truck', 'Pedestrian', 'Person_sitting', 'Cyclist', 'Tram',
                 'Misc', 'DontCare')
KITTI_IMAGE_HW = (375, 1242)  # the most common KITTI image size (it varies by a few pixels)
LABEL_FIELDS = 15

_PNG_IEND = b'IEND\xaeB`\x82'  # the last chunk's type and checksum: a PNG's last 8 bytes


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def frame_name(frame_id: Union[int, str]) -> str:
    """KITTI's 6-digit frame name: ``7 -> '000007'``; a string must already be 6 digits."""
    if isinstance(frame_id, (int, np.integer)):
        if frame_id < 0:
            raise ValueError(f'frame id must be >= 0, got {frame_id}')
        return f'{int(frame_id):06d}'
    text = str(frame_id).strip()
    if len(text) != 6 or not text.isdigit():
        raise ValueError(f'frame id must be 6 digits, got {frame_id!r}')
    return text


def _atomic_write(path: PathLike, data: bytes) -> Path:
    """Write ``data`` so that ``path`` is never half a file (see :mod:`..utils.atomic_write`)."""
    atomic_write_bytes(data, path)
    return Path(path)


def _read_text_lines(path: PathLike, what: str) -> List[str]:
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(path, f'{what} file not found')
    try:
        text = path.read_text(encoding='ascii')
    except UnicodeDecodeError as err:
        raise KittiFormatError(path, f'{what} file is not ASCII text (byte {err.start})')
    return text.splitlines()


def _parse_floats(path, tokens: Sequence[str], where: str) -> np.ndarray:
    try:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise KittiFormatError(path, f'{where}: {bad!r} is not a number') from None
    if not np.isfinite(values).all():
        raise KittiFormatError(path, f'{where}: NaN or inf value')
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _check_single_spaces(path, line: str, where: str):
    # mmdet3d splits on ' ' exactly: a tab or a double space would make it read '' as a number.
    if line != line.strip() or line.split(' ') != line.split():
        raise KittiFormatError(path, f'{where}: fields must be separated by single spaces '
                               '(mmdet3d splits on one space)')


# --------------------------------------------------------------------------------------------
# velodyne
# --------------------------------------------------------------------------------------------
def read_velodyne(path: PathLike) -> np.ndarray:
    """Read a KITTI velodyne scan.

    Returns:
        float32 array (N, 4): x, y, z (metres, LiDAR frame), reflectance. A 0-byte file is a
        valid scan without points (N = 0): the detector predicts nothing for it.
    """
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(path, 'velodyne file not found')
    size = path.stat().st_size
    if size % 16:
        raise KittiFormatError(
            path, f'size {size} bytes is not a multiple of 16 (4 float32 per point): '
            'truncated or not a KITTI .bin')
    points = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
    bad_rows = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if bad_rows.size:
        raise KittiFormatError(
            path, f'{bad_rows.size} of {len(points)} points have NaN/inf values '
            f'(first at row {bad_rows[0]})')
    return points


def write_velodyne(path: PathLike, points: np.ndarray) -> Path:
    """Write points (N, 4) as float32 rows (x, y, z, reflectance)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f'points must have shape (N, 4), got {points.shape}')
    return _atomic_write(path, np.ascontiguousarray(points, dtype=np.float32).tobytes())


# --------------------------------------------------------------------------------------------
# calib
# --------------------------------------------------------------------------------------------
def read_calib(path: PathLike) -> Dict[str, np.ndarray]:
    """Read a KITTI object calib file.

    Returns:
        dict: ``P0..P3`` (3, 4), ``R0_rect`` (3, 3), ``Tr_velo_to_cam`` (3, 4),
        ``Tr_imu_to_velo`` (3, 4), float64.
    """
    path = Path(path)
    lines = _read_text_lines(path, 'calib')
    entries = []  # (line number, key, value tokens) of every non-blank line
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(':')
        if not sep:
            raise KittiFormatError(path, f'line {number}: expected "KEY: numbers", got {line[:40]!r}')
        entries.append((number, key.strip(), rest))
    keys = [key for _, key, _ in entries]
    for key in CALIB_KEYS:
        if key not in keys:
            raise KittiFormatError(path, f'missing calib key {key!r}')
    calib = {}
    for index, key in enumerate(CALIB_KEYS):
        number, found, rest = entries[index]
        if found != key or number != index + 1:
            raise KittiFormatError(
                path, f'line {number} holds {found!r} but line {index + 1} must hold {key!r} '
                '(mmdet3d reads calib lines by position: P0 P1 P2 P3 R0_rect Tr_velo_to_cam '
                'Tr_imu_to_velo)')
        where = f'line {number} ({key})'
        _check_single_spaces(path, lines[number - 1].rstrip('\r'), where)
        tokens = rest.split()
        shape = CALIB_SHAPES[key]
        if len(tokens) != shape[0] * shape[1]:
            raise KittiFormatError(
                path, f'{where}: {len(tokens)} numbers, expected {shape[0] * shape[1]} '
                f'({shape[0]}x{shape[1]})')
        calib[key] = _parse_floats(path, tokens, where).reshape(shape)
    return calib


def format_calib(calib: Dict[str, np.ndarray]) -> str:
    """The text of a KITTI calib file (``%.12e`` numbers, KITTI's own format)."""
    lines = []
    for key in CALIB_KEYS:
        rows, cols = CALIB_SHAPES[key]
        matrix = np.asarray(calib[key], dtype=np.float64)[:rows, :cols]
        if matrix.shape != (rows, cols):
            raise ValueError(f'calib[{key!r}] must be at least {rows}x{cols}, got {matrix.shape}')
        lines.append(f'{key}: ' + ' '.join(f'{v:.12e}' for v in matrix.ravel()))
    return '\n'.join(lines) + '\n\n'


def write_calib(path: PathLike, calib: Dict[str, np.ndarray]) -> Path:
    """Write the seven matrices (3x4 / 3x3, or 4x4 extended ones) in KITTI's format and order."""
    return _atomic_write(path, format_calib(calib).encode('ascii'))


def _extend(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    rows, cols = matrix.shape
    out[:rows, :cols] = matrix
    return out


def lidar2cam(calib: Dict[str, np.ndarray]) -> np.ndarray:
    """LiDAR -> rectified camera-0 frame, (4, 4): ``R0_rect @ Tr_velo_to_cam`` (as mmdet3d)."""
    return _extend(calib['R0_rect']) @ _extend(calib['Tr_velo_to_cam'])


def lidar2img(calib: Dict[str, np.ndarray], cam: str = 'P2') -> np.ndarray:
    """LiDAR -> image of camera ``cam`` (4, 4): ``P @ R0_rect @ Tr_velo_to_cam`` (as mmdet3d).

    Homogeneous ``lidar2img @ (x, y, z, 1)`` gives ``(u * d, v * d, d, 1)`` with d the depth.
    """
    if cam not in ('P0', 'P1', 'P2', 'P3'):
        raise ValueError(f'cam must be one of P0..P3, got {cam!r}')
    return _extend(calib[cam]) @ lidar2cam(calib)


# --------------------------------------------------------------------------------------------
# label
# --------------------------------------------------------------------------------------------
def read_label(path: PathLike) -> List[dict]:
    """Read a KITTI label file.

    Returns:
        list of dicts, one per line: ``type`` (str), ``truncated`` (float), ``occluded`` (int),
        ``alpha`` (float), ``bbox`` (4,) x1 y1 x2 y2, ``hwl`` (3,) height width length,
        ``location`` (3,) bottom centre in the rectified camera frame, ``rotation_y`` (float),
        and ``score`` (float) when the file has 16 fields per line.
    """
    path = Path(path)
    lines = _read_text_lines(path, 'label')
    objects = []
    num_fields = None
    seen_dontcare = False
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip('\r')
        where = f'line {number}'
        if not line.strip():
            raise KittiFormatError(path, f'{where} is blank (mmdet3d cannot parse blank lines)')
        _check_single_spaces(path, line, where)
        fields = line.split(' ')
        if len(fields) not in (LABEL_FIELDS, LABEL_FIELDS + 1):
            raise KittiFormatError(
                path, f'{where}: {len(fields)} fields, expected {LABEL_FIELDS} '
                f'(or {LABEL_FIELDS + 1} with a score)')
        if num_fields is None:
            num_fields = len(fields)
        elif len(fields) != num_fields:
            raise KittiFormatError(
                path, f'{where}: {len(fields)} fields but line 1 has {num_fields} '
                '(all lines must have a score, or none)')
        name = fields[0]
        if name not in KITTI_CLASSES:
            raise KittiFormatError(
                path, f'{where}: unknown class name {name!r} (known: {" ".join(KITTI_CLASSES)})')
        if name == 'DontCare':
            seen_dontcare = True
        elif seen_dontcare:
            raise KittiFormatError(
                path, f'{where}: {name} after a DontCare line (DontCare lines must come last: '
                'mmdet3d numbers objects assuming so)')
        try:
            occluded = int(fields[2])
        except ValueError:
            raise KittiFormatError(
                path, f'{where}: occluded {fields[2]!r} is not an integer') from None
        if occluded not in (-1, 0, 1, 2, 3):
            raise KittiFormatError(path, f'{where}: occluded {occluded} not in -1..3')
        values = _parse_floats(path, [fields[1]] + fields[3:], where)
        truncated, alpha = values[0], values[1]
        bbox, hwl, location = values[2:6], values[6:9], values[9:12]
        if bbox[2] < bbox[0] or bbox[3] < bbox[1]:
            raise KittiFormatError(path, f'{where}: 2D box {bbox.tolist()} has x2 < x1 or y2 < y1')
        if name != 'DontCare' and (hwl <= 0).any():
            raise KittiFormatError(path, f'{where}: dimensions h w l {hwl.tolist()} must be > 0')
        obj = dict(type=name, truncated=float(truncated), occluded=occluded, alpha=float(alpha),
                   bbox=bbox, hwl=hwl, location=location, rotation_y=float(values[12]))
        if num_fields == LABEL_FIELDS + 1:
            obj['score'] = float(values[13])
        objects.append(obj)
    return objects


def format_label_line(obj: dict) -> str:
    """One KITTI label line (KITTI's own number formats; DontCare with its -1/-10/-1000 fields)."""
    name = obj['type']
    if name not in KITTI_CLASSES:
        raise ValueError(f'unknown KITTI class {name!r}')
    box = ' '.join(f'{v:.2f}' for v in obj['bbox'])
    if name == 'DontCare':
        line = f'DontCare -1 -1 -10 {box} -1 -1 -1 -1000 -1000 -1000 -10'
    else:
        hwl = ' '.join(f'{v:.2f}' for v in obj['hwl'])
        loc = ' '.join(f'{v:.2f}' for v in obj['location'])
        line = (f'{name} {obj["truncated"]:.2f} {int(obj["occluded"])} {obj["alpha"]:.2f} '
                f'{box} {hwl} {loc} {obj["rotation_y"]:.2f}')
    if 'score' in obj:
        line += f' {obj["score"]:.4f}'
    return line


def write_label(path: PathLike, objects: Iterable[dict]) -> Path:
    """Write a label file; DontCare objects are written after the others (KITTI's order)."""
    objects = list(objects)
    ordered = ([o for o in objects if o['type'] != 'DontCare'] +
               [o for o in objects if o['type'] == 'DontCare'])
    text = ''.join(format_label_line(o) + '\n' for o in ordered)
    return _atomic_write(path, text.encode('ascii'))


# --------------------------------------------------------------------------------------------
# image
# --------------------------------------------------------------------------------------------
def check_image(path: PathLike, expected_hw: Optional[Tuple[int, int]] = None,
                decode: bool = False) -> Tuple[int, int]:
    """Check that an image exists and is complete; return its (height, width).

    A PNG is checked by PIL without decoding its pixels (size from the header, every chunk's
    checksum up to IEND, so a truncated download fails) and must end with the IEND chunk's
    own 8 bytes, which PIL does not read but libpng (OpenCV, mmcv) needs. Other formats, or
    ``decode=True``, are decoded with OpenCV.
    """
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(path, 'image file not found')
    try:
        with Image.open(path) as image:
            is_png, (width, height) = image.format == 'PNG' and not decode, image.size
            if is_png:
                image.verify()
    except UnidentifiedImageError:
        is_png = False  # not an image PIL knows: OpenCV below decides
    except (OSError, SyntaxError, EOFError) as e:  # PIL's words for a broken PNG
        raise KittiFormatError(path, f'PNG is truncated or corrupt: {e}') from None
    if is_png:
        with open(path, 'rb') as f:
            f.seek(max(path.stat().st_size - len(_PNG_IEND), 0))
            if f.read() != _PNG_IEND:
                raise KittiFormatError(path, 'PNG does not end with an IEND chunk (truncated file)')
    else:
        import cv2
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise KittiFormatError(path, 'not a readable image')
        height, width = image.shape[:2]
    if expected_hw is not None and (height, width) != tuple(expected_hw):
        raise KittiFormatError(
            path, f'image is {height}x{width} (HxW), expected {expected_hw[0]}x{expected_hw[1]}')
    return int(height), int(width)


def write_image(path: PathLike, image_bgr: np.ndarray) -> Path:
    """Write a uint8 (H, W, 3) BGR image as PNG (OpenCV's channel order)."""
    import cv2
    ok, encoded = cv2.imencode('.png', image_bgr)
    if not ok:
        raise ValueError(f'OpenCV could not encode an image of shape {image_bgr.shape}')
    return _atomic_write(path, encoded.tobytes())


# --------------------------------------------------------------------------------------------
# ImageSets and whole splits
# --------------------------------------------------------------------------------------------
def read_imageset(path: PathLike) -> List[str]:
    """Read ``ImageSets/<split>.txt``: one 6-digit frame name per line."""
    path = Path(path)
    names = []
    for number, line in enumerate(_read_text_lines(path, 'ImageSets'), start=1):
        text = line.strip()
        if not text:
            continue
        if len(text) != 6 or not text.isdigit():
            raise KittiFormatError(path, f'line {number}: {text[:20]!r} is not a 6-digit frame id')
        names.append(text)
    return names


def write_imageset(path: PathLike, frame_ids: Iterable[Union[int, str]]) -> Path:
    text = ''.join(frame_name(i) + '\n' for i in frame_ids)
    return _atomic_write(path, text.encode('ascii'))


def kitti_frame_paths(root: PathLike, split: str, frame_id: Union[int, str]) -> Dict[str, Path]:
    """Paths of one frame's files: keys velodyne, image_2, calib, label_2."""
    if split not in ('training', 'testing'):
        raise ValueError(f"split must be 'training' or 'testing', got {split!r}")
    name = frame_name(frame_id)
    base = Path(root) / split
    return dict(velodyne=base / 'velodyne' / f'{name}.bin',
                image_2=base / 'image_2' / f'{name}.png',
                calib=base / 'calib' / f'{name}.txt',
                label_2=base / 'label_2' / f'{name}.txt')


def validate_kitti_split(root: PathLike, split: str, frame_ids: Iterable[Union[int, str]],
                         with_label: bool = True, expected_hw: Optional[Tuple[int, int]] = None,
                         progress: bool = True) -> dict:
    """Check that every frame of a split has its files and that they parse.

    Args:
        root: the KITTI root (holding ``training/``, ``testing/``, ``ImageSets/``).
        split: ``'training'`` or ``'testing'`` (the folder).
        frame_ids: ints or 6-digit names, e.g. from :func:`read_imageset`.
        with_label: also read ``label_2`` (training frames).
        expected_hw: if given, every image must have this (height, width).

    Returns:
        dict(num_frames, num_points, num_objects: {class name: count}).

    Raises:
        KittiFormatError: the first missing folder or file, or the first file that does not
            parse, with a one-line message naming it.
    """
    frame_ids = list(frame_ids)
    base = Path(root) / split
    folders = ['velodyne', 'image_2', 'calib'] + (['label_2'] if with_label else [])
    for folder in folders:
        if not (base / folder).is_dir():
            raise KittiFormatError(base / folder, 'directory not found')
    iterator = frame_ids
    if progress:
        from tqdm import tqdm
        iterator = tqdm(frame_ids, desc=f'checking {split}', unit='frame')
    num_points = 0
    num_objects: Dict[str, int] = {}
    for frame_id in iterator:
        paths = kitti_frame_paths(root, split, frame_id)
        num_points += len(read_velodyne(paths['velodyne']))
        read_calib(paths['calib'])
        check_image(paths['image_2'], expected_hw)
        if with_label:
            for obj in read_label(paths['label_2']):
                num_objects[obj['type']] = num_objects.get(obj['type'], 0) + 1
    return dict(num_frames=len(frame_ids), num_points=num_points, num_objects=num_objects)
