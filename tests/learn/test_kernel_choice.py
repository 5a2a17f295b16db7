"""The large-data model's kernel, chosen by the rows its subset leaves out (issue 23).

Matern-5/2 is the default of small campaigns (chosen on the dev suite); above ``GP_MAX_POINTS``
records the thousands of rows the subset GP leaves out judge whether BoTorch's RBF predicts them
better. A smooth function must get the RBF, a rough one keep Matern-5/2, and the chosen kernel must
survive a save and reload.
"""
from __future__ import annotations

import torch

from dm_hpc.learn import fit_surrogate
from dm_hpc.learn.subset_gp import KERNELS, choose_kernel, fit_subset_gp, kernel_of, subset_rows

#: Small sizes keep the tests cheap: 3,000 records, 600 of them conditioned on, 2,400 left out.
SIZE = dict(subset_points=600, fit_points=150)


def _data(n: int, f, noise: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g, dtype=torch.double)
    return X, (f(X) + noise * torch.randn(n, generator=g, dtype=torch.double)).unsqueeze(-1)


def _smooth(X):
    return torch.sin(3 * X[:, 0]) * torch.cos(2 * X[:, 1])


def _rough(X):  # kinks everywhere: continuous, not differentiable
    return (torch.sin(9 * X[:, 0])).abs() + (X[:, 1] - 0.4).abs()


def _chosen(X, Y):
    lo, hi = X.min(0).values, X.max(0).values
    rows = subset_rows(len(X), SIZE["subset_points"], 0)
    fits = {name: fit_subset_gp(X, Y, seed=0, noise="homoscedastic", settings=s, bounds=torch.stack([lo, hi]), **SIZE)
            for name, s in KERNELS.items()}
    model, gains = choose_kernel(fits, X, Y, rows, seed=0)
    return kernel_of(model), gains


def test_a_smooth_function_with_many_rows_gets_the_rbf_kernel():
    X, Y = _data(3000, _smooth, 0.002)
    kernel, gains = _chosen(X, Y)
    assert kernel == "rbf", gains
    assert kernel_of(fit_surrogate(X, Y, kind="auto", seed=0, noise="homoscedastic", **SIZE)) == "rbf"


def test_a_rough_function_keeps_matern():
    X, Y = _data(3000, _rough, 0.002)
    kernel, gains = _chosen(X, Y)
    assert kernel == "matern52", gains


def test_no_choice_without_left_out_rows():
    X, Y = _data(500, _smooth, 0.002)
    assert kernel_of(fit_surrogate(X, Y, kind="auto", seed=0, **SIZE)) == "matern52"


def test_the_chosen_kernel_is_saved_and_rebuilt(tmp_path):
    from dm_hpc.learn.persist import load_surrogate, save_surrogate, surrogate_state

    X, Y = _data(3500, _smooth, 0.002)  # the default subset (a reload conditions on GP_MAX_POINTS rows)
    model = fit_surrogate(X, Y, kind="auto", seed=0)
    assert kernel_of(model) == "rbf"
    save_surrogate(surrogate_state(model, "subset-gp", X, Y), tmp_path / "model.pt")
    again = load_surrogate(tmp_path / "model.pt")
    assert kernel_of(again) == "rbf"
    Xt = torch.rand(200, 2, generator=torch.Generator().manual_seed(3), dtype=torch.double)
    with torch.no_grad():
        for noise in (False, True):
            a, b = model.posterior(Xt, observation_noise=noise), again.posterior(Xt, observation_noise=noise)
            assert torch.allclose(a.mean, b.mean, atol=1e-8) and torch.allclose(a.variance, b.variance, atol=1e-10)
