import pytest
import torch

from dm_hpc.learn import fit_gp, predict
from dm_hpc.learn.multifidelity import KINDS, fit_multifidelity


def _data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g, dtype=torch.double)
    cheap = torch.sin(9 * X[:, 0]) * torch.cos(7 * X[:, 1]) * 3  # rough: hard to learn from few points
    measured = cheap + 0.4 + 0.2 * X[:, 0]  # smooth offset: easy as a residual
    return X, cheap, measured


def test_auto_picks_the_kind_with_lowest_cv_error_and_beats_measured_only():
    X, cheap, y = _data()
    y_obs = y.clone()
    y_obs[40:] = float("nan")  # items 40.. are held out
    fit = fit_multifidelity(X, cheap, y_obs)
    assert set(fit.cv_rmse) == set(KINDS) and fit.kind == min(fit.cv_rmse, key=fit.cv_rmse.get)
    mu, sd = fit.predict(X[40:], cheap[40:])
    assert mu.shape == sd.shape == (20,)
    alone = fit_gp(X[:40], y[:40].unsqueeze(-1))
    rmse_fit = ((mu - y[40:]) ** 2).mean().sqrt()
    rmse_alone = ((predict(alone, X[40:])[0][:, 0] - y[40:]) ** 2).mean().sqrt()
    assert rmse_fit < 0.5 * rmse_alone


def test_bad_input_names_the_problem():
    X, cheap, y = _data(10)
    with pytest.raises(ValueError, match="same length"):
        fit_multifidelity(X, cheap[:5], y)
    with pytest.raises(ValueError, match="at least 2 measured"):
        fit_multifidelity(X, cheap, torch.full((10,), float("nan"), dtype=torch.double))
    with pytest.raises(ValueError, match="unknown multi-fidelity kind"):
        fit_multifidelity(X, cheap, y, kind="magic")
