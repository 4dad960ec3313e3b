"""KITTI-like calibration matrices, slightly different for every synthetic frame.

The nominal values are those of a typical KITTI object frame: focal length ~721.5 px,
principal point ~(609.6, 172.9), camera 2 about 6 cm left of camera 0, R0_rect within a
degree of identity, and the Velodyne about 0.27 m behind and 0.08 m above camera 0 with its
axes (x forward, y left, z up) mapped onto the camera's (x right, y down, z forward).
Each frame perturbs them a little (focal length, principal point, rotations, lever arm), so
that a model or a projection that ignores the frame's own calib is visibly wrong.

Matrices are rounded through KITTI's ``%.12e`` text format before they are returned, so the
scene is rendered with exactly the numbers the calib file holds.
"""
import numpy as np

from .kitti_io import CALIB_KEYS, format_calib

NOMINAL_FOCAL = 721.5377
NOMINAL_PRINCIPAL = (609.5593, 172.854)
STEREO_BASELINE = 0.5372  # metres between camera 0 and camera 1 (and 2 and 3)
CAM2_OFFSET = (0.0599, -0.00036, 0.00275)  # t of P2 = K [I | t]: camera 2 sits at -t
CAM3_OFFSET = (-0.4731, 0.0024, 0.00273)
VELO_TO_CAM_AXES = np.array([[0., -1., 0.],   # camera x (right)   = -velodyne y (left)
                             [0., 0., -1.],   # camera y (down)    = -velodyne z (up)
                             [1., 0., 0.]])   # camera z (forward) =  velodyne x (forward)
VELO_IN_CAM = (-0.0041, -0.0763, -0.2718)  # Tr translation: velodyne origin in camera-0 axes
IMU_TO_VELO_T = (-0.8087, 0.3196, -0.7997)


def rotation_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix (3, 3) = Rz @ Ry @ Rx for small angles in radians."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def _round_trip(calib: dict) -> dict:
    """Pass the matrices through the calib file's text format (what the file will hold)."""
    values = {}
    for line in format_calib(calib).splitlines():
        if line:
            key, rest = line.split(':')
            values[key] = np.array([float(v) for v in rest.split()])
    return {key: values[key].reshape(np.shape(calib[key])) for key in CALIB_KEYS}


def sample_kitti_calib(rng: np.random.Generator, perturb: bool = True) -> dict:
    """A KITTI-format calibration for one frame.

    Returns:
        dict with ``P0..P3`` (3, 4), ``R0_rect`` (3, 3), ``Tr_velo_to_cam`` (3, 4),
        ``Tr_imu_to_velo`` (3, 4), float64, exactly as they will be written.
    """
    scale = 1.0 if perturb else 0.0
    focal = NOMINAL_FOCAL * (1 + scale * rng.normal(0, 0.004))
    cx = NOMINAL_PRINCIPAL[0] + scale * rng.normal(0, 2.0)
    cy = NOMINAL_PRINCIPAL[1] + scale * rng.normal(0, 1.5)
    K = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1.0]])

    def projection(t):
        return K @ np.hstack([np.eye(3), np.reshape(t, (3, 1))])

    deg = np.pi / 180
    r0_rect = rotation_xyz(*(scale * rng.normal(0, 0.4 * deg, 3)))
    velo_rot = rotation_xyz(*(scale * rng.normal(0, 0.4 * deg, 3))) @ VELO_TO_CAM_AXES
    velo_t = np.asarray(VELO_IN_CAM) + scale * rng.normal(0, 0.01, 3)
    imu_rot = rotation_xyz(*(scale * rng.normal(0, 0.2 * deg, 3)))
    calib = dict(
        P0=projection((0, 0, 0)),
        P1=projection((-STEREO_BASELINE, 0, 0)),
        P2=projection(CAM2_OFFSET),
        P3=projection(CAM3_OFFSET),
        R0_rect=r0_rect,
        Tr_velo_to_cam=np.hstack([velo_rot, velo_t[:, None]]),
        Tr_imu_to_velo=np.hstack([imu_rot, np.reshape(IMU_TO_VELO_T, (3, 1))]),
    )
    return _round_trip(calib)


def camera_intrinsics(projection: np.ndarray):
    """Split ``P = K [I | t]`` (3, 4) into K (3, 3) and the camera centre -t (3,) in the
    rectified camera-0 frame."""
    K = projection[:, :3]
    centre = -np.linalg.solve(K, projection[:, 3])
    return K, centre


def lidar_pose_in_rect(calib: dict):
    """The LiDAR's rotation (3, 3) and origin (3,) in the rectified camera-0 frame:
    ``x_rect = R @ x_lidar + origin`` (``R0_rect @ Tr_velo_to_cam``, a rigid motion)."""
    rotation = calib['R0_rect'] @ calib['Tr_velo_to_cam'][:, :3]
    origin = calib['R0_rect'] @ calib['Tr_velo_to_cam'][:, 3]
    return rotation, origin
