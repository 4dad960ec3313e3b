"""KITTI -> mmdet3d 1.x info files, FOV-reduced scans and GT database, by mmdet3d's converter.

The conversion itself is mmdet3d's own code, shipped inside the mmdet3d wheel under
``mmdet3d/.mim/tools/dataset_converters/`` (``kitti_converter``, ``update_infos_to_v2``,
``create_gt_database``); it is imported from there, not copied. This module adds what it
lacks:

* the input is validated first with the project's strict KITTI readers, frame by frame with
  a progress bar: a missing split file or frame file, a truncated or NaN scan, a calib file
  missing a key, a bad label line or an unknown class stops the run with one line naming the
  file and the problem (``KittiFormatError``), before anything is written;
* nothing is written half-done: mmdet3d's converter runs in a hidden staging folder inside
  ``out_dir`` (a symlinked view of the source tree), and each product is then renamed into
  place, the info files last (a failure while moving puts back what was there before);
* every class name that mmdet3d stores as label -1 (``DontCare``) is listed in the info
  file's ``metainfo['categories']``: mmdet3d's updater only lists those of the split's LAST
  frame, and ``KittiMetric`` then fails with ``KeyError: -1`` on any other split.

Splits: ``ImageSets/train.txt`` and ``ImageSets/val.txt`` are required and must list frames
(``trainval`` is their union, as in mmdet3d; an ``ImageSets/trainval.txt`` is not read).
``ImageSets/test.txt`` is optional: when it is missing or empty, no test infos are written
(a note says so; the KITTI test download is often left out); when it lists frames, every one
must be complete in ``testing/`` (velodyne, image_2, calib).

Products (all in ``out_dir``, normally the data root itself):
``{tag}_infos_{train,val,trainval,test}.pkl`` (the v2 / "1.1" info format),
``training/velodyne_reduced/`` and ``testing/velodyne_reduced/`` (points inside camera 2's
field of view, what the dataset configs load), ``{tag}_gt_database/`` and
``{tag}_dbinfos_train.pkl`` (for ``ObjectSample``).
"""
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Dict, List, Optional

from gemini_det3d.data import kitti_io
from gemini_det3d.data.errors import KittiFormatError

REQUIRED_SPLITS = ('train', 'val')
OPTIONAL_SPLITS = ('test', )
_TOOLS_ALIAS = '_mmdet3d_mim_tools'


def mmdet3d_converter_modules() -> types.SimpleNamespace:
    """mmdet3d's KITTI converter modules, imported from the wheel's ``.mim/tools`` folder.

    They live in a namespace package called ``tools`` with relative imports between them.
    A project that has its own ``tools/`` folder on ``sys.path`` (this one) would shadow or
    merge with that name, so the folder is mounted under a private package name instead.
    """
    import importlib

    import mmdet3d
    tools_dir = Path(mmdet3d.__file__).parent / '.mim' / 'tools'
    if not (tools_dir / 'dataset_converters' / 'kitti_converter.py').is_file():
        raise RuntimeError(f'{tools_dir}: the mmdet3d wheel does not ship its KITTI converter')
    if _TOOLS_ALIAS not in sys.modules:
        package = types.ModuleType(_TOOLS_ALIAS)
        package.__path__ = [str(tools_dir)]
        sys.modules[_TOOLS_ALIAS] = package

    def load(name):
        return importlib.import_module(f'{_TOOLS_ALIAS}.dataset_converters.{name}')

    return types.SimpleNamespace(
        kitti_converter=load('kitti_converter'),
        update_infos_to_v2=load('update_infos_to_v2'),
        create_gt_database=load('create_gt_database'))


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def read_split_file(path: Path) -> List[str]:
    """Frame ids (6-digit strings) listed in an ``ImageSets/*.txt`` file, each at most once."""
    if not path.is_file():
        raise KittiFormatError(path, 'split file missing')
    ids = kitti_io.read_imageset(path)
    if len(set(ids)) != len(ids):
        twice = next(frame for frame in ids if ids.count(frame) > 1)
        raise KittiFormatError(path, f'frame {twice} listed twice')
    return ids


def read_splits(root: Path) -> Dict[str, Optional[List[str]]]:
    """``{'train': ids, 'val': ids, 'test': ids or None}``; errors name a missing split.

    An absent or empty ``test.txt`` means no test split (None): mmdet3d's info updater
    cannot write an empty info file.
    """
    if not root.is_dir():
        raise KittiFormatError(root, 'KITTI root folder missing')
    if not (root / 'ImageSets').is_dir():
        raise KittiFormatError(
            root / 'ImageSets', 'folder missing: it should hold the split files train.txt and '
            'val.txt (test.txt optional), one frame id such as 000123 per line; KITTI does not '
            "ship them, mmdet3d's data/kitti/ImageSets has the usual split")
    splits = {}
    for name in REQUIRED_SPLITS:
        path = root / 'ImageSets' / f'{name}.txt'
        splits[name] = read_split_file(path)
        if not splits[name]:
            raise KittiFormatError(path, 'split file lists no frames')
    test_file = root / 'ImageSets' / 'test.txt'
    splits['test'] = (read_split_file(test_file) or None) if test_file.is_file() else None
    return splits


def validate_frames(root: Path, splits: Dict[str, Optional[List[str]]],
                    with_plane: bool = False, progress: bool = True) -> None:
    """Check every listed frame with the strict readers.

    Raises:
        KittiFormatError: at the first missing or malformed file.
    """
    jobs = []  # (folder, frame id, with_label)
    for name in REQUIRED_SPLITS:
        jobs += [('training', frame, True) for frame in splits[name]]
    if splits.get('test') is not None:
        jobs += [('testing', frame, False) for frame in splits['test']]
    # A frame listed in two splits is read once.
    unique_jobs = list(dict.fromkeys(jobs))
    bar = _progress_bar(len(unique_jobs), 'checking KITTI frames') if progress else None
    for folder, frame, with_label in unique_jobs:
        # One frame at a time, for one progress bar over all splits (on stdout: stderr is
        # kept for the error line). The readers also check the calib line order that
        # mmdet3d's positional parser relies on.
        kitti_io.validate_kitti_split(root, folder, [frame], with_label=with_label,
                                      progress=False)
        if with_plane and folder == 'training':
            plane = root / folder / 'planes' / f'{frame}.txt'
            if not plane.is_file():
                raise KittiFormatError(plane, 'ground-plane file missing (--with-plane)')
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stdout.write('\n')


def _progress_bar(total: int, title: str):
    import mmengine
    print(title)
    return mmengine.ProgressBar(total)


# --------------------------------------------------------------------------------------------
# Conversion in a staging folder
# --------------------------------------------------------------------------------------------
def _stage_source_tree(root: Path, stage_root: Path, splits, with_plane: bool) -> None:
    """A symlinked view of the KITTI tree, with normalised split files, for mmdet3d to work in.

    mmdet3d writes its outputs next to its inputs (``training/velodyne_reduced``, the GT
    database); in this view they land in the staging folder, not in the source tree.
    """
    image_sets = stage_root / 'ImageSets'
    image_sets.mkdir(parents=True)
    for name in REQUIRED_SPLITS + OPTIONAL_SPLITS:
        ids = splits.get(name) or []  # an absent test split becomes an empty one
        (image_sets / f'{name}.txt').write_text(''.join(f'{frame}\n' for frame in ids))
    folders = {'training': ['velodyne', 'image_2', 'calib', 'label_2']
               + (['planes'] if with_plane else []),
               'testing': ['velodyne', 'image_2', 'calib'] if splits.get('test') else []}
    for folder, subfolders in folders.items():
        (stage_root / folder).mkdir()
        for sub in subfolders:
            os.symlink(root / folder / sub, stage_root / folder / sub, target_is_directory=True)


def _run_mmdet3d_converter(stage_root: Path, v1_dir: Path, tag: str, with_plane: bool,
                           has_test: bool) -> None:
    """mmdet3d's ``kitti_data_prep`` steps, with the v1 infos kept apart from the v2 ones."""
    from mmdet3d.utils import register_all_modules
    from mmengine.registry import DefaultScope

    register_all_modules(init_default_scope=False)
    tools = mmdet3d_converter_modules()
    v1_dir.mkdir()
    v1_info = {split: str(v1_dir / f'{tag}_infos_{split}.pkl')
               for split in ('train', 'val', 'trainval', 'test')}
    tools.kitti_converter.create_kitti_info_file(
        str(stage_root), tag, with_plane, save_path=str(v1_dir), relative_path=True)
    tools.kitti_converter.create_reduced_point_cloud(
        str(stage_root), tag, train_info_path=v1_info['train'], val_info_path=v1_info['val'],
        test_info_path=v1_info['test'])
    for split in ('train', 'val', 'trainval') + (('test', ) if has_test else ()):
        # v1 and v2 folders are siblings: mmdet3d sleeps 5 s when out_dir is a substring of
        # the input path (its "overwriting" warning).
        tools.update_infos_to_v2.update_pkl_infos('kitti', out_dir=str(stage_root),
                                                  pkl_path=v1_info[split])
        _list_ignored_categories(v1_info[split], stage_root / f'{tag}_infos_{split}.pkl')
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        tools.create_gt_database.create_groundtruth_database(
            'KittiDataset', str(stage_root), tag, f'{tag}_infos_train.pkl',
            relative_path=False, mask_anno_path='instances_train.json', with_mask=False)


def _list_ignored_categories(v1_path: str, v2_path: Path) -> None:
    """Add every label name of the split that is not a class to ``categories`` as -1.

    mmdet3d's ``update_kitti_infos`` resets its set of ignored names per frame, so only the
    last frame's reach the metainfo; ``KittiMetric`` maps each instance's label back through
    that dict and needs -1 there whenever some frame has a ``DontCare`` box.
    """
    import mmengine
    v1 = mmengine.load(v1_path)
    v2 = mmengine.load(str(v2_path))
    categories = v2['metainfo']['categories']
    ignored = sorted({name for info in v1 for name in info.get('annos', {}).get('name', [])
                      if name not in categories})
    if not ignored:
        return
    for name in ignored:
        categories[name] = -1
    mmengine.dump(v2, str(v2_path))


def _products(tag: str, has_test: bool) -> List[str]:
    """Paths (relative to ``out_dir``) to publish, in publishing order: data before indexes."""
    items = ['training/velodyne_reduced', f'{tag}_gt_database', f'{tag}_dbinfos_train.pkl']
    if has_test:
        items.insert(1, 'testing/velodyne_reduced')
    items += [f'{tag}_infos_{split}.pkl' for split in ('train', 'val', 'trainval')]
    if has_test:
        items.append(f'{tag}_infos_test.pkl')
    return items


def _publish(stage_root: Path, out_dir: Path, items: List[str], replaced_dir: Path) -> None:
    """Rename each staged product into ``out_dir``; on failure, restore what was replaced."""
    done = []  # (target, backup or None)
    try:
        for rel in items:
            staged, target = stage_root / rel, out_dir / rel
            if not staged.exists():
                if rel.endswith('velodyne_reduced'):
                    staged.mkdir(parents=True)  # a split without frames: publish it empty
                else:
                    raise RuntimeError(f'mmdet3d converter did not write {rel}')
            target.parent.mkdir(parents=True, exist_ok=True)
            backup = None
            if target.exists() or target.is_symlink():
                backup = replaced_dir / rel
                backup.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, backup)
            done.append((target, backup))
            os.replace(staged, target)
    except BaseException:
        for target, backup in reversed(done):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists() or target.is_symlink():
                target.unlink()
            if backup is not None:
                os.replace(backup, target)
        raise


def create_kitti_data(root_path, out_dir=None, extra_tag: str = 'kitti',
                      with_plane: bool = False, progress: bool = True) -> List[Path]:
    """Validate a KITTI tree and write mmdet3d's info files, reduced scans and GT database.

    Args:
        root_path (str | Path): KITTI root (``ImageSets/``, ``training/``, ``testing/``).
        out_dir (str | Path, optional): where the products go; defaults to ``root_path``
            (the dataset configs expect them in the data root).
        extra_tag (str): prefix of the info files (``kitti``).
        with_plane (bool): read ``training/planes`` into the infos.
        progress (bool): show the validation progress bar.

    Returns:
        list[Path]: the published products.

    Raises:
        KittiFormatError: bad or incomplete input (nothing written).
    """
    root = Path(root_path).resolve()
    out = Path(out_dir).resolve() if out_dir is not None else root
    splits = read_splits(root)
    has_test = splits['test'] is not None
    if not has_test:
        print(f'note: {root / "ImageSets" / "test.txt"} is missing or empty: skipping the '
              f'test split (no {extra_tag}_infos_test.pkl)')
    validate_frames(root, splits, with_plane, progress)

    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix='.create_data-', dir=out))
    try:
        stage_root = staging / 'root'
        _stage_source_tree(root, stage_root, splits, with_plane)
        _run_mmdet3d_converter(stage_root, staging / 'v1', extra_tag, with_plane, has_test)
        items = _products(extra_tag, has_test)
        _publish(stage_root, out, items, staging / 'replaced')
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    published = [out / rel for rel in items]
    print(f'wrote {", ".join(str(p) for p in published)}')
    return published
