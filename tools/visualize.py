"""Pictures of detections: the LiDAR scan with ground-truth and predicted 3D boxes from a
bird's-eye view and a chase view (Open3D, offscreen: no display needed), and the camera image
with the projected boxes and the LiDAR depth grid. Ground truth is green, predictions red.

From a config's data set (ground truth from the infos; predictions from a results file of
``tools/test.py --out`` / a folder of KITTI label files, or from a checkpoint):

    python tools/visualize.py CONFIG --split val --out-dir DIR [--num N]
        [--results results.pkl | --results PRED_LABEL_DIR | --checkpoint CKPT]

From raw KITTI files (velodyne, calib, image_2, label_2 of one or more frames):

    python tools/visualize.py --frame data/kitti/training --idx 000003 --out-dir DIR
        [--pred-dir PRED_LABEL_DIR]

Per frame it writes ``{frame}_bev.png``, ``{frame}_chase.png`` and ``{frame}_camera.png``.
``--interactive`` also opens an Open3D window per frame where a display exists.
"""
import argparse
import sys

from gemini_det3d.utils.cli import run_cli


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Render pictures of 3D detections')
    p.add_argument('config', nargs='?', help='config whose data set to draw (data set mode)')
    p.add_argument('--split', choices=['train', 'val', 'test'], default='val')
    p.add_argument('--num', type=int, default=None, help='draw the first N frames (default: all)')
    p.add_argument('--results', help='predictions: a .pkl from tools/test.py --out, or a folder '
                   'of KITTI label .txt files')
    p.add_argument('--checkpoint', help='predictions: run this checkpoint on the frames')
    p.add_argument('--frame', help='raw mode: a KITTI split folder (velodyne/ calib/ image_2/ '
                   'label_2/), e.g. data/kitti/training')
    p.add_argument('--idx', nargs='+', help='raw mode: frame id(s), e.g. 000003')
    p.add_argument('--pred-dir', help='raw mode: folder of predicted KITTI label .txt files')
    p.add_argument('--out-dir', help='where the PNG files go')
    p.add_argument('--score-thr', type=float, default=0.3, help='hide predictions below this score')
    p.add_argument('--renderer', choices=['auto', 'open3d', 'software'], default='auto',
                   help='scan views: Open3D offscreen (auto: falls back to software if it '
                   'cannot start)')
    p.add_argument('--color-by', choices=['height', 'reflectance'], default='height')
    p.add_argument('--bev-range', type=float, nargs=4, metavar=('XMIN', 'YMIN', 'XMAX', 'YMAX'),
                   help="bird's-eye range in metres (default: the config's point_cloud_range, "
                   "else KITTI's 0 -40 70.4 40)")
    p.add_argument('--interactive', action='store_true', help='also open an Open3D window')
    p.add_argument('--device', default='cpu', help='for --checkpoint')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def _check_args(args):
    from gemini_det3d.errors import GeminiInputError
    if bool(args.config) == bool(args.frame):
        raise GeminiInputError('tools/visualize.py: give either CONFIG (data set mode) or '
                               '--frame KITTI_SPLIT_DIR --idx ID (raw KITTI mode)')
    if args.frame and not args.idx:
        raise GeminiInputError('tools/visualize.py: --frame needs --idx (e.g. --idx 000003)')
    if args.config and (args.idx or args.pred_dir):
        raise GeminiInputError('tools/visualize.py: --idx / --pred-dir belong to --frame mode; '
                               'with a CONFIG use --num and --results')
    if args.results and args.checkpoint:
        raise GeminiInputError('tools/visualize.py: give --results or --checkpoint, not both')
    if not args.out_dir and not args.interactive:
        raise GeminiInputError('tools/visualize.py: --out-dir is needed (or --interactive)')


class _RawFrames:
    """The raw-mode frames, read one at a time (with a length for the progress bar)."""

    def __init__(self, args):
        self.args = args

    def __len__(self):
        return len(self.args.idx)

    def __iter__(self):
        from gemini_det3d.visualization.kitti_frame_source import load_kitti_frame
        for idx in self.args.idx:
            yield load_kitti_frame(self.args.frame, idx, self.args.pred_dir, self.args.score_thr)


def main(argv=None):
    args = parse_args(argv)
    _check_args(args)
    from tqdm import tqdm

    from gemini_det3d.visualization import FramePictureWriter
    from gemini_det3d.visualization.open3d_render import require_display, show_interactive
    if args.interactive:
        require_display()  # before any slow loading
    bev_range = args.bev_range
    if args.config:
        from gemini_det3d.utils.config import load_config
        from gemini_det3d.visualization.dataset_frame_source import DatasetFrames, bev_range_of
        cfg = load_config(args.config, args.cfg_options)
        bev_range = bev_range or bev_range_of(cfg)
        frames = DatasetFrames(cfg, args.split, results=args.results, checkpoint=args.checkpoint,
                               num=args.num, score_thr=args.score_thr, device=args.device)
    else:
        frames = _RawFrames(args)
    writer = FramePictureWriter(args.renderer, bev_range=bev_range, color_by=args.color_by)
    written = 0
    for frame in tqdm(frames, total=len(frames), desc=f'pictures ({writer.backend})',
                      unit='frame', disable=args.no_progress):
        if args.out_dir:
            writer.write(frame, args.out_dir)
            written += 1
        if args.interactive:
            show_interactive(frame.points, frame.gt_boxes, frame.pred_boxes, args.color_by,
                             title=f'{frame.name}: ground truth green, predictions red')
    source = getattr(frames, 'predictions', None)
    if source is not None and source.unmatched:
        print(f'warning: {args.results} holds no predictions for {len(source.unmatched)} of the '
              f'frames (e.g. {source.unmatched[0]}): results of another data set?',
              file=sys.stderr)
    if args.out_dir:
        print(f'{written} frame(s) -> {args.out_dir}: {{frame}}_bev.png, {{frame}}_chase.png, '
              f'{{frame}}_camera.png (ground truth green, predictions red; scan views by '
              f'{writer.backend})')


if __name__ == '__main__':
    run_cli(main)
