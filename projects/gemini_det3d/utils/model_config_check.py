"""Checks of a loaded config before anything is built: does the model fit its data pipeline?

A wrong channel count or a misspelt fusion type would otherwise surface as a shape error
in the first forward pass, or a registry ``KeyError`` deep in the detector's build, after the
data set has been read. Each check here names the config keys that disagree, in one line:

* every argument given to a model component (``img_backbone``, ``img_neck``, the ``pts_*``
  parts) is one its class takes (e.g. ``DualSwinTransformer`` counts its input as 3 RGB +
  ``lidar_channels``, it has no ``in_channels``);
* the backbone's ``fusion_cfg.type`` names a registered stage fusion module;
* the image the pipelines stack (3 RGB + the ``LiDARToDepthImage`` channels, normalised by
  ``StackDepthImage`` with one mean / std per channel) has the channel count the image
  backbone reads;
* the neck's ``in_channels`` are the backbone's output widths, and ``PointFusion``'s
  ``img_channels`` / ``img_levels`` fit the neck's outputs.

Only what can be told from the config is checked; a component of an unknown kind is
left to its own constructor.
"""
import inspect
from typing import Iterator, List, Optional, Tuple

from ..errors import GeminiInputError

RGB_CHANNELS = 3
MODEL_COMPONENTS = ('data_preprocessor', 'img_backbone', 'img_neck', 'pts_voxel_encoder',
                    'pts_middle_encoder', 'pts_backbone', 'pts_neck', 'pts_bbox_head')
DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class ConfigCheckError(GeminiInputError):
    """One line: the config file, the keys that disagree and how."""


def _model_class(type_name):
    """The registered class for a model ``type`` (mmdet3d scope, ``mmdet.X`` allowed), or None."""
    from mmdet3d.registry import MODELS
    if not isinstance(type_name, str):
        return type_name if inspect.isclass(type_name) else None
    try:
        return MODELS.get(type_name)
    except Exception:  # noqa: BLE001  (an unknown scope prefix): the build will report it
        return None


def _init_parameters(cls) -> Optional[dict]:
    """``{name: default}`` of ``cls.__init__``; None if it takes ``**kwargs`` (anything goes)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # no self
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return {p.name: p.default for p in params if p.kind != p.VAR_POSITIONAL}


def _arg(component: dict, name: str, default=None):
    """``component[name]``, else the default of its class's constructor, else ``default``."""
    if name in component:
        return component[name]
    cls = _model_class(component.get('type'))
    params = _init_parameters(cls) if cls is not None else None
    value = (params or {}).get(name, inspect.Parameter.empty)
    return default if value is inspect.Parameter.empty else value


# ---------------------------------------------------------------------------------------------
# Constructor arguments and fusion types
# ---------------------------------------------------------------------------------------------
def _check_arguments(model: dict) -> None:
    for key in MODEL_COMPONENTS:
        component = model.get(key)
        if not isinstance(component, dict):
            continue
        cls = _model_class(component.get('type'))
        params = _init_parameters(cls) if cls is not None else None
        if params is None:
            continue
        unknown = [k for k in component if k not in params and k not in ('type', '_scope_')]
        if unknown:
            hint = (' (its input is 3 RGB + lidar_channels channels)'
                    if cls.__name__ == 'DualSwinTransformer' and 'in_channels' in unknown else '')
            raise ConfigCheckError(
                f'model.{key}.{unknown[0]}: {cls.__name__} takes no argument {unknown[0]!r}'
                f'{hint}; it takes {", ".join(params)}')


def _fusion_cfgs(backbone: dict, key: str) -> Iterator[Tuple[str, dict]]:
    """``(config key, fusion_cfg)`` of a backbone and of the backbones it wraps."""
    if isinstance(backbone.get('fusion_cfg'), dict):
        yield f'{key}.fusion_cfg', backbone['fusion_cfg']
    if isinstance(backbone.get('backbone'), dict):
        yield from _fusion_cfgs(backbone['backbone'], f'{key}.backbone')


def _check_fusion_types(model: dict) -> None:
    from ..fusion.builder import unknown_fusion_type_problem
    backbone = model.get('img_backbone')
    if not isinstance(backbone, dict):
        return
    for key, fusion_cfg in _fusion_cfgs(backbone, 'model.img_backbone'):
        problem = unknown_fusion_type_problem(fusion_cfg.get('type'))
        if problem:
            raise ConfigCheckError(f'{key}.type: {problem}')


# ---------------------------------------------------------------------------------------------
# Channels: pipeline -> backbone -> neck -> PointFusion
# ---------------------------------------------------------------------------------------------
def _pipelines(cfg) -> Iterator[Tuple[str, list]]:
    """``(config key, pipeline)`` of each data loader's data set (wrappers unwrapped)."""
    for loader in DATALOADERS:
        dataset = (cfg.get(loader) or {}).get('dataset')
        key = f'{loader}.dataset'
        while isinstance(dataset, dict) and isinstance(dataset.get('dataset'), dict):
            dataset, key = dataset['dataset'], f'{key}.dataset'
        if isinstance(dataset, dict) and isinstance(dataset.get('pipeline'), list):
            yield f'{key}.pipeline', dataset['pipeline']


def stacked_image_channels(pipeline: list, key: str) -> Optional[Tuple[int, str]]:
    """Channel count of the image a pipeline packs and how it is made up; None: no image.

    Also checks that ``StackDepthImage`` has one mean and one std per stacked channel.
    """
    from ..datasets.transforms.depth_grid import DEFAULT_CHANNELS
    steps = [s for s in pipeline if isinstance(s, dict)]
    types = [s.get('type') for s in steps]
    if 'StackDepthImage' in types:
        depth = next((s for s in steps if s.get('type') == 'LiDARToDepthImage'), {})
        lidar = list(depth.get('channels', DEFAULT_CHANNELS))
        count = RGB_CHANNELS + len(lidar)
        stack = steps[types.index('StackDepthImage')]
        for stat in ('mean', 'std'):
            values = stack.get(stat)
            if values is not None and len(values) != count:
                raise ConfigCheckError(
                    f'{key}: StackDepthImage.{stat} has {len(values)} values for the '
                    f'{count} stacked channels (3 RGB + LiDARToDepthImage.channels {lidar})')
        return count, f'3 RGB + {len(lidar)} LiDAR channels (LiDARToDepthImage.channels {lidar})'
    if 'LoadImageFromFile' in types:
        return RGB_CHANNELS, '3 RGB channels (no StackDepthImage)'
    return None


def backbone_input_channels(backbone: dict, key: str) -> Optional[Tuple[int, bool, str]]:
    """``(n, exact, why)``: the backbone reads exactly n channels (``exact``), or channels
    0..n-1 of a wider input; None when the config does not tell."""
    kind = backbone.get('type')
    if kind == 'DualSwinTransformer':
        lidar = _arg(backbone, 'lidar_channels')
        return RGB_CHANNELS + lidar, True, f'{key}.lidar_channels={lidar} (3 RGB + {lidar} LiDAR)'
    if kind == 'ChannelSliceBackbone':
        channels = list(_arg(backbone, 'channels'))
        inner = backbone.get('backbone')
        if isinstance(inner, dict):
            wanted = backbone_input_channels(inner, f'{key}.backbone')
            if wanted is not None and wanted[1] and wanted[0] != len(channels):
                raise ConfigCheckError(
                    f'{key}.channels: slices {len(channels)} channels {channels} but '
                    f'{wanted[2]} reads {wanted[0]}')
        return max(channels) + 1, False, f'{key}.channels={channels}'
    in_channels = _arg(backbone, 'in_channels')
    if isinstance(in_channels, int):
        return in_channels, True, f'{key}.in_channels={in_channels}'
    return None


def backbone_out_channels(backbone: dict) -> Optional[Tuple[List[int], str]]:
    """The widths of a Swin backbone's outputs (C_i = embed_dims * 2^i for i in out_indices,
    doubled by ``out_merge='concat'``) and the keys that make them; None for other kinds."""
    kind = backbone.get('type')
    if kind == 'ChannelSliceBackbone' and isinstance(backbone.get('backbone'), dict):
        return backbone_out_channels(backbone['backbone'])
    if kind not in ('DualSwinTransformer', 'mmdet.SwinTransformer', 'SwinTransformer'):
        return None
    embed_dims = _arg(backbone, 'embed_dims')
    out_indices = tuple(_arg(backbone, 'out_indices'))
    scale = 2 if kind == 'DualSwinTransformer' and _arg(backbone, 'out_merge') == 'concat' else 1
    widths = [scale * int(embed_dims * 2**i) for i in out_indices]
    why = f'embed_dims={embed_dims} * 2^i for out_indices={out_indices}'
    return widths, why + (', doubled by out_merge=concat' if scale == 2 else '')


def _check_channels(cfg) -> None:
    model = cfg.model
    backbone = model.get('img_backbone')
    if not isinstance(backbone, dict):
        return
    wanted = backbone_input_channels(backbone, 'model.img_backbone')
    for key, pipeline in _pipelines(cfg):
        made = stacked_image_channels(pipeline, key)
        if wanted is None or made is None:
            continue
        count, exact, why = wanted
        if (exact and made[0] != count) or (not exact and made[0] < count):
            need = f'reads {count}' if exact else f'needs at least {count}'
            raise ConfigCheckError(f'{why} {need} image channels but {key} stacks {made[0]}: '
                                   f'{made[1]}')

    neck = model.get('img_neck')
    out = backbone_out_channels(backbone)
    if isinstance(neck, dict) and out is not None and 'in_channels' in neck:
        if list(neck['in_channels']) != out[0]:
            raise ConfigCheckError(
                f'model.img_neck.in_channels={list(neck["in_channels"])} but model.img_backbone '
                f'outputs {out[0]} channels ({out[1]})')

    fusion_layer = (model.get('pts_voxel_encoder') or {}).get('fusion_layer')
    if isinstance(neck, dict) and isinstance(fusion_layer, dict):
        neck_out, levels = neck.get('out_channels'), fusion_layer.get('img_levels')
        img_channels = fusion_layer.get('img_channels')
        key = 'model.pts_voxel_encoder.fusion_layer'
        if isinstance(neck_out, int) and isinstance(img_channels, int) and neck_out != img_channels:
            raise ConfigCheckError(f'{key}.img_channels={img_channels} but model.img_neck.'
                                   f'out_channels={neck_out}')
        num_outs = neck.get('num_outs')
        if isinstance(num_outs, int) and levels is not None:
            levels = [levels] if isinstance(levels, int) else list(levels)
            if levels and max(levels) >= num_outs:
                raise ConfigCheckError(f'{key}.img_levels={levels} but model.img_neck.num_outs='
                                       f'{num_outs} (levels 0..{num_outs - 1})')


def check_model_config(cfg, path: str) -> None:
    """Raise :class:`ConfigCheckError` (``'{path}: {keys}: {problem}'``) at the first
    disagreement between the model's parts or between the model and its pipelines."""
    model = cfg.get('model')
    if not isinstance(model, dict):
        return
    try:
        _check_arguments(model)
        _check_fusion_types(model)
        _check_channels(cfg)
    except ConfigCheckError as err:
        raise ConfigCheckError(f'{path}: {err}') from None
