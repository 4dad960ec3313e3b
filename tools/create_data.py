"""Prepare a KITTI data root for training: mmdet3d's info files, reduced scans, GT database.

    python tools/create_data.py kitti --root-path data/kitti --out-dir data/kitti --extra-tag kitti

The same command line as mmdet3d's ``tools/create_data.py`` (KITTI only), running mmdet3d's
own converter (see ``gemini_det3d.datasets.kitti_converter``). The input is validated
first; bad or incomplete input (a root without ``ImageSets/``, a missing split or frame file,
a malformed scan, calib or label) stops the run with one line on stderr naming the file and
the problem (exit status 2) and nothing written. ``ImageSets/test.txt`` is optional.
"""
import argparse
import sys

from gemini_det3d.utils.cli import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert a KITTI tree into mmdet3d info files')
    parser.add_argument('dataset', choices=['kitti'], help='dataset name (only kitti)')
    parser.add_argument('--root-path', default='./data/kitti', help='KITTI root folder')
    parser.add_argument('--out-dir', default=None,
                        help='where the info files, velodyne_reduced and the GT database go '
                        '(default: the root path)')
    parser.add_argument('--extra-tag', default='kitti', help='prefix of the info files')
    parser.add_argument('--with-plane', action='store_true',
                        help='read training/planes into the infos')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from gemini_det3d.datasets.kitti_converter import create_kitti_data
    try:
        create_kitti_data(args.root_path, args.out_dir or args.root_path, args.extra_tag,
                          with_plane=args.with_plane)
    finally:
        sys.stdout.flush()  # the progress bar before the error line


if __name__ == '__main__':
    run_cli(main)
