from .non_finite_loss_guard import NonFiniteLossError, NonFiniteLossGuardHook

__all__ = ['NonFiniteLossError', 'NonFiniteLossGuardHook']
