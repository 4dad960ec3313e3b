"""Cost of the depth-aligned LiDAR image on a full-size KITTI-like frame, one CPU thread.

Usage: python benchmarks/projection.py [--points 120000] [--repeats 50] [--seed 0]

The scan is a 64-beam, 360-degree sweep (HDL-64E-like: 64 elevations from +2 to -24.8
degrees) hitting a ground plane 1.73 m below the sensor and walls 15-60 m away, so that, as in
KITTI, about a fifth of the points fall inside camera 2's 1242 x 375 image. The projection is
KITTI's ``P2 @ R0_rect @ Tr_velo_to_cam``. Printed: the machine, the settings, the median
milliseconds per frame of ``project_lidar_to_depth_grid`` (plain and with 3x3 / 5x5
densification), of the re-projection at an augmented image size that the pipeline does after
resize + flip, and the speed-up over a per-point Python loop measured in the same run.
"""
import os

# One thread: the budget is per core, and BLAS would otherwise spread the 3x3 matmul.
for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from gemini_det3d.datasets.transforms.depth_grid import (  # noqa: E402
    point_channel_values, project_lidar_to_depth_grid, project_points_to_image,
    rasterize_nearest)

from gemini_det3d.utils.machine import cpu_name  # noqa: E402

IMAGE_HW = (375, 1242)
# KITTI frame 000000's calibration (camera 2), rounded.
P2 = np.array([[721.5377, 0.0, 609.5593, 44.85728], [0.0, 721.5377, 172.854, 0.2163791],
               [0.0, 0.0, 1.0, 0.002745884], [0, 0, 0, 1]])
R0_RECT = np.eye(4)
R0_RECT[:3, :3] = [[0.9999239, 0.00983776, -0.007445048],
                   [-0.009869795, 0.9999421, -0.004278459],
                   [0.007402527, 0.004351614, 0.9999631]]
TR_VELO_TO_CAM = np.array([[0.007533745, -0.9999714, -0.000616602, -0.004069766],
                           [0.01480249, 0.0007280733, -0.9998902, -0.07631618],
                           [0.9998621, 0.00752379, 0.01480755, -0.2717806], [0, 0, 0, 1]])
LIDAR2IMG = P2 @ R0_RECT @ TR_VELO_TO_CAM


def kitti_like_scan(num_points: int, rng: np.random.Generator) -> np.ndarray:
    """[N, 4] float32 (x, y, z, reflectance) of a 64-beam sweep over ground and walls."""
    beams = 64
    azimuths = int(np.ceil(num_points / beams))
    elevation = np.deg2rad(np.linspace(2.0, -24.8, beams))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, azimuths, endpoint=False)[None, :]
    wall = rng.uniform(15.0, 60.0, size=(1, azimuths))
    with np.errstate(divide='ignore'):
        ground = np.where(elevation < 0, 1.73 / np.tan(-elevation), np.inf)
    rng_m = np.minimum(ground, wall / np.cos(elevation)) + rng.normal(0, 0.02, (beams, azimuths))
    x = rng_m * np.cos(elevation) * np.cos(azimuth)
    y = rng_m * np.cos(elevation) * np.sin(azimuth)
    z = rng_m * np.sin(elevation)
    refl = rng.uniform(0, 1, size=x.shape)
    scan = np.stack([x, y, z, refl], axis=-1).reshape(-1, 4)[:num_points]
    return scan.astype(np.float32)


def python_loop_grid(points: np.ndarray, lidar2img: np.ndarray, hw) -> np.ndarray:
    """Per-point reference (what the vectorised code replaces)."""
    height, width = hw
    grid = np.zeros((height, width, 4), dtype=np.float32)
    for x, y, z, r in points.tolist():
        cx, cy, cz = (lidar2img[:3, :3] @ (x, y, z)) + lidar2img[:3, 3]
        if not cz > 0.1:
            continue
        u, v = cx / cz, cy / cz
        if 0 <= u < width and 0 <= v < height:
            cell = grid[int(v), int(u)]
            if cell[3] == 0 or cz < cell[0]:
                cell[:] = (cz, z, r, 1.0)
    return grid


def timed_ms(fn, repeats: int):
    """(median, min) milliseconds per call; the min is what an idle core gives on a shared
    machine, the median what a run saw."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times)), 1000.0 * float(np.min(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--points', type=int, default=120000)
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    scan = kitti_like_scan(args.points, np.random.default_rng(args.seed))
    uv, depth, index = project_points_to_image(scan, LIDAR2IMG, IMAGE_HW)
    print(f'machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.platform()}')
    print(f'python {platform.python_version()}, numpy {np.__version__}; threads: 1 '
          f'(OMP/OPENBLAS/MKL_NUM_THREADS=1)')
    print(f'frame: {len(scan)} points, image {IMAGE_HW[1]}x{IMAGE_HW[0]}, '
          f'{len(index)} points inside the image, channels depth/height/reflectance/mask')

    rows = []
    for dilation in (1, 3, 5):
        ms = timed_ms(lambda: project_lidar_to_depth_grid(scan, LIDAR2IMG, IMAGE_HW,
                                                          dilation=dilation), args.repeats)
        rows.append((f'project_lidar_to_depth_grid, dilation {dilation}', ms))

    # Re-projection after a 1.2x resize + horizontal flip (what StackDepthImage does).
    values = point_channel_values(scan[index], depth, ('depth', 'height', 'reflectance', 'mask'))
    out_hw = (450, 1490)
    scale = (out_hw[1] / IMAGE_HW[1], out_hw[0] / IMAGE_HW[0])

    def reproject():
        moved = uv * scale
        moved[:, 0] = out_hw[1] - moved[:, 0]
        return rasterize_nearest(moved, depth, values, out_hw, mask_channel=3)

    rows.append(('re-projection at 1490x450 after resize + flip', timed_ms(reproject,
                                                                           args.repeats)))
    loop_points = scan[:20000]
    loop_ms = timed_ms(lambda: python_loop_grid(loop_points, LIDAR2IMG, IMAGE_HW), 3)[0]
    loop_ms *= len(scan) / len(loop_points)
    fast_ms = rows[0][1][0]
    print(f'{"":<52s} {"median":>8s} {"min":>8s}  (ms/frame, {args.repeats} runs)')
    for name, (median, best) in rows:
        print(f'{name:<52s} {median:8.2f} {best:8.2f}')
    print(f'{"per-point Python loop (extrapolated from 20k points)":<52s} {loop_ms:8.1f}')
    print(f'speed-up of the vectorised projection over the loop: {loop_ms / fast_ms:.0f}x; '
          f'target <= 10 ms/frame (median): {"met" if fast_ms <= 10 else "NOT met"}')
    print(f'load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs '
          '(other processes inflate the median)')


if __name__ == '__main__':
    main()
