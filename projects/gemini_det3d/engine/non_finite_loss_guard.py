"""Stop training at the first non-finite loss term, before it reaches the weights.

mmengine's train step is ``parse_losses -> backward -> optimizer step``; a hook after the
iteration (mmdet's ``CheckInvalidLossHook``) only notices once NaN weights exist. This hook
wraps the model's ``parse_losses`` so that the check runs between the forward pass and the
backward pass: the weights and the checkpoints already on disk stay as they were, and the
error names the iteration and the loss term.
"""
import math

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet3d.registry import HOOKS


class NonFiniteLossError(RuntimeError):
    """Raised by :class:`NonFiniteLossGuardHook`; its message is one line."""


@HOOKS.register_module()
class NonFiniteLossGuardHook(Hook):
    """Raise :class:`NonFiniteLossError` when any loss term is NaN or infinite."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        original = model.parse_losses

        def checked_parse_losses(losses):
            for name, value in losses.items():
                values = value if isinstance(value, (list, tuple)) else [value]
                for v in values:
                    if torch.is_tensor(v) and not torch.isfinite(v).all():
                        bad = v.detach().float().flatten()
                        bad = bad[~torch.isfinite(bad)][0].item()
                        raise NonFiniteLossError(
                            f'iteration {runner.iter + 1} (epoch {runner.epoch + 1}): loss term '
                            f'{name!r} is {"nan" if math.isnan(bad) else bad}; stopped before the '
                            f'optimizer step, the last checkpoint in {runner.work_dir} is intact')
            return original(losses)

        model.parse_losses = checked_parse_losses
