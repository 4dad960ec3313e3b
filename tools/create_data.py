"""Prepare a KITTI data root for training: mmdet3d's info files, reduced scans, GT database.

    python tools/create_data.py kitti --root-path data/kitti --out-dir data/kitti --extra-tag kitti

The same command line as mmdet3d's ``tools/create_data.py`` (KITTI only), running mmdet3d's
own converter (see ``gemini_det3d.datasets.kitti_converter``). The input is validated
first; bad or incomplete input stops the run with one line on stderr naming the file and the
problem (exit status 1) and nothing written. ``ImageSets/test.txt`` is optional.
"""
import argparse
import sys


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


def main(argv=None) -> int:
    args = parse_args(argv)
    from gemini_det3d.data.errors import KittiFormatError
    from gemini_det3d.datasets.kitti_converter import create_kitti_data
    try:
        create_kitti_data(args.root_path, args.out_dir or args.root_path, args.extra_tag,
                          with_plane=args.with_plane)
    except KittiFormatError as err:
        sys.stdout.flush()
        print(f'create_data.py: error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
