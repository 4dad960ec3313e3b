"""Write a synthetic data set in the exact KITTI object-detection layout.

    python tools/make_synthetic_kitti.py --out-dir data/synthetic_kitti \
        --num-train 80 --num-val 20 --num-test 10 --seed 0

Scenes (docs/synthetic-world.md): streets with kerbs and slopes; composite Cars, Vans, Trucks,
Pedestrians, Persons sitting, Cyclists and Misc at KITTI's rates and sizes; unlabelled
look-alikes (street furniture, parked bicycles, hedges, containers, trailers); reflectance from
materials. A 64-beam LiDAR and camera 2 see the same scene through each frame's own
KITTI-like calib.
Then convert it like real KITTI: ``python tools/create_data.py kitti --root-path DIR
--out-dir DIR --extra-tag kitti``. The same seed writes the same bytes.
"""
import argparse
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write synthetic scenes in the KITTI layout')
    parser.add_argument('--out-dir', required=True, help='root of the data set to write')
    parser.add_argument('--num-train', type=int, required=True, help='frames in ImageSets/train.txt')
    parser.add_argument('--num-val', type=int, required=True, help='frames in ImageSets/val.txt')
    parser.add_argument('--num-test', type=int, default=0, help='frames in testing/ (test.txt)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (same seed, same bytes)')
    parser.add_argument('--workers', type=int, default=0,
                        help='processes to use (0: this one); the output does not depend on it')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for name in ('num_train', 'num_val', 'num_test'):
        if getattr(args, name) < 0:
            print(f'make_synthetic_kitti.py: error: --{name.replace("_", "-")} must be >= 0',
                  file=sys.stderr)
            return 2
    from gemini_det3d.data.synthetic_kitti import make_synthetic_kitti
    start = time.perf_counter()
    result = make_synthetic_kitti(args.out_dir, args.num_train, args.num_val, args.num_test,
                                  seed=args.seed, progress=True, num_workers=args.workers)
    seconds = time.perf_counter() - start
    frames = args.num_train + args.num_val + args.num_test
    print(f'wrote {frames} frames ({result["num_points"]} LiDAR points) to {result["root"]} '
          f'in {seconds:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
