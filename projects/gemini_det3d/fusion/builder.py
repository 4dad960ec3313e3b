"""Building a stage fusion module by config ``type``, with the registered types named on error.

The backbone's ``fusion_cfg`` may name any module registered in mmdet3d's ``MODELS`` that
implements the stage interface of :class:`BaseFusion` (two ``[B, N, C]`` token tensors in, two
out). A typo or a module of another kind (e.g. the point-level ``PointGeminiFusion``) is
stopped here with one line listing the types that would work, instead of the registry's
``KeyError`` deep inside the detector's build.
"""
from typing import List

from mmdet3d.registry import MODELS

from .base import BaseFusion, FusionInputError


def registered_fusion_types() -> List[str]:
    """Names of the registered stage fusion modules (subclasses of :class:`BaseFusion`), sorted."""
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, BaseFusion))


def unknown_fusion_type_problem(fusion_type) -> str:
    """``''`` if ``fusion_type`` names a stage fusion module, else what is wrong with it."""
    cls = MODELS.get(fusion_type) if isinstance(fusion_type, str) else fusion_type
    if isinstance(cls, type) and issubclass(cls, BaseFusion):
        return ''
    kind = 'is not a stage fusion module' if cls is not None else 'is not a registered fusion type'
    return f'{fusion_type!r} {kind} (registered: {", ".join(registered_fusion_types())})'


def build_fusion(fusion_cfg: dict, embed_dims: int) -> BaseFusion:
    """``MODELS.build(fusion_cfg + embed_dims)`` for one fused layer of ``embed_dims`` channels.

    Raises:
        FusionInputError: ``fusion_cfg`` has no ``type`` or names no stage fusion module.
    """
    if not isinstance(fusion_cfg, dict) or 'type' not in fusion_cfg:
        raise FusionInputError(f'fusion_cfg must be a dict with a type, got {fusion_cfg!r}')
    problem = unknown_fusion_type_problem(fusion_cfg['type'])
    if problem:
        raise FusionInputError(f'fusion_cfg.type: {problem}')
    return MODELS.build(dict(fusion_cfg, embed_dims=embed_dims))
