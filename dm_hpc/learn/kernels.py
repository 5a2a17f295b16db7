"""Kernels of our own that GPyTorch does not ship (``learn.gp`` imports this module lazily: it pulls
in GPyTorch, which light commands must not load)."""
from __future__ import annotations

from gpytorch.kernels import LinearKernel


class CentredLinearKernel(LinearKernel):
    """``gpytorch.kernels.LinearKernel`` on ``x - 0.5`` for inputs normalised to the unit cube: the
    prior variance of the linear part is smallest at the centre of the box, not at one corner, so
    no corner of the design space is favoured a priori (``GPSettings.trend``)."""

    def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
        return super().forward(x1 - 0.5, x2 - 0.5, diag=diag, last_dim_is_batch=last_dim_is_batch, **params)
