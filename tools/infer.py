"""Detect objects in one KITTI frame given by its files; print / write KITTI label lines.

    python tools/infer.py CONFIG CHECKPOINT --velodyne F.bin --calib F.txt --image F.png
        [--out pred.txt] [--score-thr 0.3]

The frame goes through the config's own test pipeline (depth image, resize, stacking), so
the result is what tools/test.py would give for it. Boxes come out in KITTI's label format
(camera frame, bottom centre, h w l, rotation_y, 2D box from the projected corners, score).

Bad input stops with one line naming the file and exit code 2: a .bin that is not a point
cloud (size not a multiple of 16 bytes), a malformed calib, an image whose size disagrees
with its calibration (see gemini_det3d/datasets/transforms/image_calib_check.py).
"""
import argparse
import sys

from gemini_det3d.utils.cli import run_cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='3D detection on one KITTI frame')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--velodyne', required=True, help='velodyne .bin (float32 x y z r)')
    p.add_argument('--calib', required=True, help='KITTI calib .txt')
    p.add_argument('--image', required=True, help='image_2 .png')
    p.add_argument('--out', help='write the label lines here (default: stdout)')
    p.add_argument('--score-thr', type=float, default=0.0)
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def check_frame_files(args) -> None:
    """The frame's own checks that need no model: the image must match its calibration.

    (The files' formats are checked by ``detect_kitti_frame``.) Done before the model is
    built, so a mismatched frame costs no model load and is named whatever the checkpoint.
    """
    from gemini_det3d.data import kitti_io
    from gemini_det3d.datasets.transforms.image_calib_check import check_image_matches_calib
    calib = kitti_io.read_calib(args.calib)
    check_image_matches_calib(kitti_io.lidar2img(calib), kitti_io.check_image(args.image),
                              args.image, calib=f'{args.calib} (P2)')


def main(argv=None):
    args = parse_args(argv)
    check_frame_files(args)
    from gemini_det3d.apis import detect_kitti_frame
    from gemini_det3d.data.kitti_io import format_label_line
    objects = detect_kitti_frame(args.config, args.checkpoint, args.velodyne, args.calib,
                                 args.image, device=args.device, score_thr=args.score_thr)
    text = ''.join(format_label_line(o) + '\n' for o in objects)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
        print(f'{len(objects)} objects -> {args.out}')
    else:
        sys.stdout.write(text)


if __name__ == '__main__':
    run_cli(main)
