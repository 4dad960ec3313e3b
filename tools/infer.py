"""Detect objects in one KITTI frame given by its files; print / write KITTI label lines.

    python tools/infer.py CONFIG CHECKPOINT --velodyne F.bin --calib F.txt --image F.png
        [--out pred.txt] [--score-thr 0.3]

The frame goes through the config's own test pipeline (depth image, resize, stacking), so
the result is what tools/test.py would give for it. Boxes come out in KITTI's label format
(camera frame, bottom centre, h w l, rotation_y, 2D box from the projected corners, score).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'projects'))

from gemini_det3d.utils.cli import run_cli  # noqa: E402


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


def main(argv=None):
    args = parse_args(argv)
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
