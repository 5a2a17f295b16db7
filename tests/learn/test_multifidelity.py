import pytest
import torch

from dm_hpc.learn import fit_gp, predict
from dm_hpc.learn.multifidelity import JOIN, KINDS, choose_kind, fit_multifidelity

#: half-width of a central 90 % normal interval, in sd
Z90 = 1.6449


def _data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g, dtype=torch.double)
    cheap = torch.sin(9 * X[:, 0]) * torch.cos(7 * X[:, 1]) * 3  # rough: hard to learn from few points
    measured = cheap + 0.4 + 0.2 * X[:, 0]  # smooth offset: easy as a residual
    return X, cheap, measured


def _rmse(mu, y):
    return float(((mu - y) ** 2).mean().sqrt())


def test_auto_keeps_cv_evidence_follows_the_rule_and_beats_measured_only():
    X, cheap, y = _data()
    fit = fit_multifidelity(X, cheap, _held_out(y, 40))  # items 40.. are held out
    assert set(fit.cv_rmse) == set(fit.cv_se) == set(KINDS)
    # the fit averages exactly the candidates within one standard error of the best
    window = {k for k in KINDS if fit.cv_rmse[k] - fit.cv_rmse[fit.best] <= fit.cv_se[k]}
    assert set(fit.members) == window and fit.best in window
    p = fit.predict(X[40:], cheap[40:])
    assert p.mean.shape == p.sd.shape == p.latent_sd.shape == (20,)
    alone = fit_gp(X[:40], y[:40].unsqueeze(-1))
    assert _rmse(p.mean, y[40:]) < 0.5 * _rmse(predict(alone, X[40:])[0][:, 0], y[40:])


def test_candidates_within_one_standard_error_are_averaged_a_clearly_better_one_is_alone():
    g = torch.Generator().manual_seed(0)
    base = 1 + torch.rand(50, generator=g, dtype=torch.double)
    sign = 1 - 2 * (torch.arange(50) % 2)  # +1, -1, ...
    # the GP is better on average by 0.02, less than one standard error of the paired differences
    # (0.3 / sqrt(50)); the line is 0.5 behind on every item: out
    chosen, rmse, se = choose_kind({"computed": base, "linear": base + 0.5, "multitask": base - 0.02 + 0.3 * sign})
    assert min(rmse, key=rmse.get) == "multitask" and chosen == JOIN.join(["computed", "multitask"])
    assert rmse["linear"] - rmse["multitask"] > se["linear"]
    # better by many standard errors: the GP alone
    chosen, rmse, se = choose_kind({"computed": base + 1.0, "linear": base + 0.5, "multitask": base})
    assert chosen == "multitask" and rmse["linear"] - rmse["multitask"] > se["linear"]


def _held_out(y, m):
    y_obs = y.clone()
    y_obs[m:] = float("nan")
    return y_obs


def test_computed_close_to_measured_chooses_a_calibration_never_worse_than_it():
    g = torch.Generator().manual_seed(1)
    n, m = 60, 40
    X = torch.rand(n, 3, generator=g, dtype=torch.double)
    cheap = torch.sin(8 * X[:, 0]) + torch.cos(6 * X[:, 1]) * X[:, 2]
    measured = cheap + 0.05 * torch.randn(n, generator=g, dtype=torch.double)  # computed = measured + small noise
    kinds = set()
    for seed in (0, 1):  # another fold assignment does not flip the choice
        fit = fit_multifidelity(X, cheap, _held_out(measured, m), seed=seed)
        kinds.add(fit.kind)
        p = fit.predict(X[m:], cheap[m:])
        assert _rmse(p.mean, measured[m:]) <= 1.1 * _rmse(cheap[m:], measured[m:])
    assert len(kinds) == 1 and kinds <= {"computed", "linear"}, kinds


def test_unrelated_computed_falls_back_to_a_gp_on_measured_values():
    g = torch.Generator().manual_seed(2)
    n, m = 60, 40
    X = torch.rand(n, 2, generator=g, dtype=torch.double)
    measured = torch.sin(4 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * torch.randn(n, generator=g, dtype=torch.double)
    cheap = 3 * torch.randn(n, generator=g, dtype=torch.double)  # says nothing about the measured value
    fit = fit_multifidelity(X, cheap, _held_out(measured, m))
    # the GP on measured values, and those that may learn to ignore the computed value; nothing that trusts it
    assert "measured" in fit.members and not {"computed", "linear", "residual"} & set(fit.members), fit.kind
    p = fit.predict(X[m:], cheap[m:])
    assert _rmse(p.mean, measured[m:]) < 0.2 * _rmse(cheap[m:], measured[m:])


def test_measured_value_sd_covers_90_percent_and_the_latent_sd_is_named_apart():
    g = torch.Generator().manual_seed(3)
    m, new = 60, 400
    X = torch.rand(m + new, 2, generator=g, dtype=torch.double)
    truth = torch.sin(5 * X[:, 0]) + X[:, 1]
    cheap = 0.8 * truth - 0.3 + 0.1 * torch.sin(7 * X[:, 1])  # biased, scaled, a little wrong
    y = truth + 0.2 * torch.randn(m + new, generator=g, dtype=torch.double)  # measurement noise sd 0.2
    fit = fit_multifidelity(X[:m], cheap[:m], y[:m])  # every fitted item measured; new items predicted
    p = fit.predict(X[m:], cheap[m:])
    covered = float(((p.mean - y[m:]).abs() <= Z90 * p.sd).double().mean())
    assert 0.8 <= covered <= 0.97, (fit.kind, covered)
    assert bool((p.latent_sd <= p.sd + 1e-12).all())
    # the latent sd leaves out the noise: its intervals are too narrow for new measurements
    latent_covered = float(((p.mean - y[m:]).abs() <= Z90 * p.latent_sd).double().mean())
    assert latent_covered < covered - 0.1, (fit.kind, covered, latent_covered)


@pytest.mark.parametrize("kind", ["computed", "linear", "residual"])
def test_each_kind_predicts_a_measured_sd_wider_than_its_latent_one(kind):
    X, cheap, y = _data(40)
    p = fit_multifidelity(X, cheap, y, kind=kind).predict(X[:5], cheap[:5])
    assert bool((p.sd > p.latent_sd).all()) and bool((p.sd > 0).all())
    if kind == "computed":
        assert torch.equal(p.mean, cheap[:5]) and bool((p.latent_sd == 0).all())


def test_bad_input_names_the_problem():
    X, cheap, y = _data(10)
    with pytest.raises(ValueError, match="same length"):
        fit_multifidelity(X, cheap[:5], y)
    with pytest.raises(ValueError, match="at least 2 measured"):
        fit_multifidelity(X, cheap, torch.full((10,), float("nan"), dtype=torch.double))
    with pytest.raises(ValueError, match="unknown multi-fidelity kind"):
        fit_multifidelity(X, cheap, y, kind="magic")
    bad = cheap.clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="computed values must be known for every item; 1 are NaN"):
        fit_multifidelity(X, bad, y)


def test_an_average_predicts_the_members_mean_and_the_mixture_sd():
    X, cheap, y = _data(40)
    avg = fit_multifidelity(X, cheap, y, kind=JOIN.join(["linear", "residual"]))
    assert avg.members == ("linear", "residual")
    parts = [fit_multifidelity(X, cheap, y, kind=k).predict(X[:7], cheap[:7]) for k in avg.members]
    p = avg.predict(X[:7], cheap[:7])
    assert torch.allclose(p.mean, (parts[0].mean + parts[1].mean) / 2)
    # an equal-weight mixture: its variance is the members' mean variance plus the spread of their means
    spread = ((parts[0].mean - parts[1].mean) / 2) ** 2
    assert torch.allclose(p.sd**2, (parts[0].sd**2 + parts[1].sd**2) / 2 + spread)
    assert torch.allclose(p.latent_sd**2, (parts[0].latent_sd**2 + parts[1].latent_sd**2) / 2 + spread)
    assert bool((p.latent_sd <= p.sd).all())


def test_the_choice_is_not_flipped_by_the_fold_assignment():
    # a real multi-fidelity case (the computed value is a biased, scaled version of the measured one
    # plus a rough error only a GP can learn) where several candidates are close
    g = torch.Generator().manual_seed(4)
    n, m = 80, 50
    X = torch.rand(n, 2, generator=g, dtype=torch.double)
    truth = torch.sin(5 * X[:, 0]) + X[:, 1]
    cheap = 0.8 * truth - 0.3 + 0.3 * torch.sin(9 * X[:, 1])
    y = truth + 0.1 * torch.randn(n, generator=g, dtype=torch.double)
    fits = [fit_multifidelity(X, cheap, _held_out(y, m), seed=seed) for seed in (0, 1, 2)]
    assert len({f.kind for f in fits}) == 1, [(f.kind, f.cv_rmse) for f in fits]
