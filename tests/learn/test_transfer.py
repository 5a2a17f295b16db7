"""Transfer from related sources (dm_hpc.learn.transfer): real BoTorch models on small synthetic data."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from dm_hpc.learn.transfer import Source, _choose, fit_transfer, loo_log_density, on_columns, subsample, union_columns


def f(X):
    return torch.sin(6 * X[:, 0]) + X[:, 1] ** 2


def _rand(n, d=3, seed=0):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.double)


def _rmse(model, X, y):
    with torch.no_grad():
        return float(((model.posterior(X).mean[:, 0] - y) ** 2).mean().sqrt())


def test_related_source_on_another_scale_is_used_and_beats_cold_on_held_out_points():
    Xs = _rand(300, seed=1)
    source = Source("screen", Xs, 3.0 * f(Xs) + 10.0)  # same landscape, other units and offset
    X, Xt = _rand(6, seed=2), _rand(200, seed=3)
    fit = fit_transfer(X, f(X), [source])
    assert fit.kind in ("multitask", "prior")
    assert fit.weights["screen"] > 0.3
    assert fit.source_points["screen"] <= 300
    cold = fit_transfer(X, f(X), [source], kind="cold")
    assert cold.weights == {"screen": 0.0}
    assert _rmse(fit.model, Xt, f(Xt)) < 0.5 * _rmse(cold.model, Xt, f(Xt))


def test_guard_an_unrelated_source_costs_no_more_than_noise():
    Xs = _rand(300, seed=4)
    g = torch.Generator().manual_seed(5)
    source = Source("unrelated", Xs, torch.randn(300, generator=g, dtype=torch.double))
    X, Xt = _rand(20, seed=6), _rand(200, seed=7)
    fit = fit_transfer(X, f(X), [source])
    cold = fit.candidates["cold"]
    assert _rmse(fit.model, Xt, f(Xt)) <= 1.25 * _rmse(cold, Xt, f(Xt))
    if fit.kind == "cold":
        assert fit.weights == {"unrelated": 0.0}


def test_a_composition_source_reads_a_target_with_a_new_element_on_its_own_elements():
    """Issue 22 item 5 (simplex-overlap): the source knows compositions of e1-e3, the target adds e0.
    The property depends on the ratios among e1-e3 (e0 dilutes, lowering it a little); read with
    e0 left out and e1-e3 renormalised, the source's prior mean ranks the target's compositions,
    while read as they are (a point off the source's simplex) it does not; the rebuilt model keeps it."""
    from dm_hpc.learn.transfer import rebuild_transfer, transfer_state

    def comp(n, seed, new):
        g = np.random.default_rng(seed)
        F = g.dirichlet(np.ones(4 if new else 3), n)
        return torch.tensor(np.column_stack([F[:, 0], F[:, 1:]]) if new else np.column_stack([np.zeros(n), F]))

    def prop(F):
        share = F[:, 1:] / F[:, 1:].sum(-1, keepdim=True)
        return torch.sin(6 * share[:, 0]) + 2 * share[:, 1] ** 2 - 0.3 * F[:, 0]

    S, X, Xt = comp(200, 1, False), comp(8, 2, True), comp(200, 3, True)
    plain = Source("e1-e3", S, 2.0 * prop(S) + 1.0, measured=(1, 2, 3))
    renorm = Source("e1-e3", S, 2.0 * prop(S) + 1.0, measured=(1, 2, 3), simplex=(1, 2, 3))
    assert renorm.simplex_positions() == [0, 1, 2]
    with_simplex = fit_transfer(X, prop(X), [renorm], kind="prior")
    without = fit_transfer(X, prop(X), [plain], kind="prior")
    assert _rmse(with_simplex.model, Xt, prop(Xt)) < 0.5 * _rmse(without.model, Xt, prop(Xt))
    assert with_simplex.loo["prior"] > without.loo["prior"]
    again = rebuild_transfer(transfer_state(with_simplex, lambda m: {}), lambda s: None)
    with torch.no_grad():
        assert torch.allclose(again.posterior(Xt).mean, with_simplex.model.posterior(Xt).mean, atol=1e-8)


def test_choice_falls_back_to_cold_when_transfer_scores_lower():
    assert _choose({"cold": 0.5, "multitask": 0.2, "prior": 0.4}, n=10) == "cold"
    assert _choose({"cold": 0.5, "multitask": 0.7, "prior": 0.6}, n=10) == "multitask"
    # too few target points for evidence: start warm
    assert _choose({"cold": 0.5, "multitask": 0.2, "prior": 0.4}, n=3) == "prior"


def test_loo_log_density_matches_refitting_without_each_point():
    from botorch.models import SingleTaskGP

    X = _rand(8, d=2, seed=8)
    y = (f(X) - f(X).mean()).unsqueeze(-1)
    full = SingleTaskGP(X, y, outcome_transform=None)
    full.covar_module.lengthscale = 0.3  # any hyper-parameters: the identity holds for each
    full.eval()
    fast = loo_log_density(full)
    for i in range(len(X)):
        keep = torch.arange(len(X)) != i
        part = SingleTaskGP(X[keep], y[keep], outcome_transform=None)
        part.load_state_dict(full.state_dict(), strict=False)
        part.eval()
        with torch.no_grad():
            post = part.posterior(X[i:i + 1], observation_noise=True)
        mu, var = float(post.mean), float(post.variance)
        slow = -0.5 * (math.log(2 * math.pi * var) + (float(y[i]) - mu) ** 2 / var)
        assert fast[i].item() == pytest.approx(slow, rel=1e-4, abs=1e-6)


def test_tables_meet_on_the_union_of_their_columns():
    cols = union_columns(["Ni", "Fe"], [["Fe", "Co"], ["La"]])
    assert cols == ["Ni", "Fe", "Co", "La"]
    table = pd.DataFrame({"Fe": [0.5, 0.2], "Co": [0.5, 0.8]})
    assert on_columns(table, cols).tolist() == [[0, 0.5, 0.5, 0], [0, 0.2, 0.8, 0]]


def test_a_big_source_is_subsampled_reproducibly():
    s = Source("big", _rand(5000, seed=9), torch.zeros(5000, dtype=torch.double))
    a, b = subsample(s, 300, seed=1), subsample(s, 300, seed=1)
    assert len(a.y) == 300 and torch.equal(a.X, b.X)
    assert not torch.equal(a.X, subsample(s, 300, seed=2).X)


def test_source_points_count_what_the_chosen_model_learns_from():
    """A ready source model that conditions on rows of its own (a store source's GP on its own
    elements) is counted by those rows under the prior kind, not by the predictions standing in
    for it, and one that does not say is not counted; the multitask kind counts its subsample of
    the rows given, the cold model none."""
    from dm_hpc.learn import fit_gp
    from dm_hpc.learn.gp import conditioned_rows

    class ReadyGP:  # a ready model that tells the rows it conditions on, as RecordsOnOwnElements
        def __init__(self, gp, tells: bool = True):
            self.gp = gp
            if tells:
                self.n_conditioned = len(conditioned_rows(gp)[1])

        def posterior(self, X):
            return self.gp.posterior(X)

    Xs = _rand(700, seed=21)
    ready = ReadyGP(fit_gp(Xs, f(Xs).unsqueeze(-1)).eval())
    Xd = _rand(40, seed=22)  # the draws its predictions stand at (the multitask kind's rows)
    with torch.no_grad():
        yd = ready.posterior(Xd).mean[:, 0]
    X = _rand(6, seed=23)
    prior = fit_transfer(X, f(X), [Source("store", Xd, yd, model=ready)], kind="prior")
    assert prior.source_points == {"store": 700}
    plain = fit_transfer(X, f(X), [Source("table", Xd, yd)], kind="prior")
    assert plain.source_points == {"table": 40}
    multitask = fit_transfer(X, f(X), [Source("store", Xd, yd, model=ready)], kind="multitask")
    assert multitask.source_points == {"store": 40}
    silent = fit_transfer(X, f(X), [Source("file", Xd, yd, model=ReadyGP(ready.gp, tells=False))], kind="prior")
    assert silent.source_points == {"file": None}  # a model file: its rows are not the predictions
    assert fit_transfer(X, f(X), [Source("store", Xd, yd, model=ready)], kind="cold").source_points == {"store": 0}


def test_bad_input_names_the_problem():
    X = _rand(4)
    with pytest.raises(ValueError, match="unknown transfer kind 'magic'"):
        fit_transfer(X, f(X), [], kind="magic")
    with pytest.raises(ValueError, match="source 'wide' has 4 input columns, the target 3"):
        fit_transfer(X, f(X), [Source("wide", _rand(5, d=4), torch.zeros(5, dtype=torch.double))])
    with pytest.raises(ValueError, match="unique"):
        s = Source("a", _rand(5), torch.zeros(5, dtype=torch.double))
        fit_transfer(X, f(X), [s, s])


def test_without_sources_the_model_is_the_cold_gp():
    X = _rand(5)
    fit = fit_transfer(X, f(X), [])
    assert fit.kind == "cold" and fit.weights == {}
    assert np.isfinite(fit.loo["cold"])


@pytest.mark.parametrize("kind", ["cold", "multitask", "prior"])
def test_a_transfer_model_saves_as_tensors_and_rebuilds_to_the_same_predictions(kind, tmp_path):
    """Issue 22 item 3: the improved model goes back as a file; every kind, with a data source whose
    GP (prior kind) is saved with the rows it conditions on, reloads with weights_only=True."""
    from dm_hpc.learn.transfer import rebuild_transfer, transfer_state

    Xs = _rand(60, seed=1)
    source = Source("screen", Xs, 3.0 * f(Xs) + 10.0, measured=(0, 1))
    X, Xt = _rand(6, seed=2), _rand(20, seed=3)
    fit = fit_transfer(X, f(X), [source], kind=kind)

    def no_ready_models(model):
        raise AssertionError("a data source's GP is saved by transfer_state itself")

    torch.save(transfer_state(fit, no_ready_models), tmp_path / "m.pt")
    again = rebuild_transfer(torch.load(tmp_path / "m.pt", weights_only=True), no_ready_models)
    with torch.no_grad():
        assert torch.allclose(again.posterior(Xt).mean, fit.model.posterior(Xt).mean, atol=1e-8)
        assert torch.allclose(again.posterior(Xt).variance, fit.model.posterior(Xt).variance, atol=1e-8)


def test_loo_rmse_and_predictions_agree_with_the_loo_density():
    from dm_hpc.learn.transfer import loo_predictions

    Xs = _rand(100, seed=1)
    X = _rand(8, seed=2)
    for kind in ("cold", "multitask", "prior"):
        fit = fit_transfer(X, f(X), [Source("screen", Xs, 2.0 * f(Xs))], kind=kind)
        mean, sd = loo_predictions(fit)
        assert mean.shape == sd.shape == (8,)
        assert float(((mean - f(X)) ** 2).mean().sqrt()) == pytest.approx(fit.loo_rmse[kind], rel=1e-6)
        lpd = -0.5 * (torch.log(2 * math.pi * sd ** 2) + ((f(X) - mean) / sd) ** 2)
        assert float(lpd.mean()) == pytest.approx(fit.loo[kind], rel=1e-5, abs=1e-6)


def test_the_prior_model_is_as_unsure_as_its_source_where_the_source_had_no_data():
    """The prior model's mean leans on a source's prediction, so its variance there is at least the
    source's own (slope squared, target units): a source fitted on x0 < 0.5 guesses at x0 > 0.9;
    a target that agrees with it where both have data gets a large slope and a small residual, and
    without the source's covariance was sure of that guess. Also: a state saved without the key
    (before the source covariance) rebuilds as the model it was, mean only."""
    from dm_hpc.learn.transfer import rebuild_transfer, transfer_state

    Xs = _rand(200, d=2, seed=1) * torch.tensor([0.5, 1.0], dtype=torch.double)
    X = _rand(8, d=2, seed=2) * torch.tensor([0.5, 1.0], dtype=torch.double)
    far = torch.tensor([[0.95, 0.2], [1.0, 0.5], [0.9, 0.8]], dtype=torch.double)
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.double)
    fit = fit_transfer(X, f(X), [Source("screen", Xs, f(Xs))], kind="prior", bounds=bounds, source_covariance=True)
    model = fit.model
    slope = fit.weights["screen"]
    assert slope > 0.5  # the source is the target's landscape: it is used
    with torch.no_grad():
        source_var = fit.source_models[0].posterior(far).variance[:, 0] / f(Xs).var()  # z's variance
        floor = slope ** 2 * source_var * model.outcome_transform.stdvs.reshape(-1)[0] ** 2
        assert (model.posterior(far).variance[:, 0] >= 0.9 * floor).all()

    state = transfer_state(fit, lambda m: {})
    assert state["source_covariance"] is True
    old = fit_transfer(X, f(X), [Source("screen", Xs, f(Xs))], kind="prior", bounds=bounds, source_covariance=False)
    saved = transfer_state(old, lambda m: {})
    del saved["source_covariance"]  # as written before the key existed
    again = rebuild_transfer(saved, lambda s: None)
    with torch.no_grad():
        assert torch.allclose(again.posterior(far).variance, old.model.posterior(far).variance, atol=1e-8)


def test_means_alone_of_the_prior_model_are_its_means_and_leave_its_variances_as_they_were():
    """Means asked for without variances (GPyTorch's ``skip_posterior_variances``, as the baseline
    pruning and the confidence bound's screen ask for them) are the prior model's means: the
    sources' covariance inside its kernel is their real one, not the zero the flag would give, and
    nothing wrong is kept for the variances asked for next."""
    import copy

    from dm_hpc.learn.moments import moments

    Xs = _rand(200, d=2, seed=11)
    X, new = _rand(8, d=2, seed=12), _rand(50, d=2, seed=13)
    fit = fit_transfer(X, f(X), [Source("screen", Xs, 2.0 * f(Xs) + 1.0)], kind="prior", source_covariance=True)
    fresh = copy.deepcopy(fit.model)
    mean, var = moments(fresh, new)
    alone, none = moments(fit.model, new, variances=False)
    assert none is None
    assert torch.allclose(alone, mean, atol=1e-9)
    assert torch.allclose(moments(fit.model, new)[1], var, rtol=1e-6, atol=1e-12)


def test_a_batch_gets_the_same_source_covariance_as_each_element_alone():
    """A batch acquisition with pending points asks for the source covariance of b point sets that
    share most rows; each element gets what it gets on its own (one joint posterior each)."""
    Xs = _rand(150, d=2, seed=1)
    X = _rand(8, d=2, seed=2)
    fit = fit_transfer(X, f(X), [Source("screen", Xs, f(Xs))], kind="prior", source_covariance=True)
    mean = fit.model.mean_module
    shared = _rand(5, d=2, seed=3)  # training and pending rows, the same in every element
    cand = _rand(12, d=2, seed=4)
    batch = torch.cat([shared.expand(12, 5, 2), cand.unsqueeze(-2)], -2)  # 12 x 6 x 2
    other = _rand(3, d=2, seed=5)
    with torch.no_grad():
        joint = mean.source_covariances(batch, other.expand(12, 3, 2))[0]
        square = mean.source_covariances(batch, batch)[0]
        for b in range(12):
            alone = mean.source_covariances(batch[b], other)[0]
            assert torch.allclose(joint[b], alone, atol=1e-9)
            assert torch.allclose(square[b], mean.source_covariances(batch[b], batch[b])[0], atol=1e-9)


def test_a_source_on_another_input_scale_leaves_the_cold_candidate_the_targets_own():
    """A review (stop 46): the cold candidate, what the guard falls back to, was normalised by the
    union of target and source ranges, so a source in percent against target fractions squashed
    the target into 1 % of the unit cube and the fallback was no longer the cold model. The cold
    candidate reads the target's bounds; the models that read the sources, their union."""
    from dm_hpc.learn.gp import GP_DEFAULTS, fit_gp

    Xs = _rand(100, seed=1) * 100.0  # percent where the target has fractions
    source = Source("percent", Xs, f(Xs / 100.0))
    X, Xt = _rand(8, seed=2), _rand(50, seed=3)
    box = torch.stack([torch.zeros(3), torch.ones(3)]).double()
    fit = fit_transfer(X, f(X), [source], bounds=box)
    plain = fit_gp(X, f(X).unsqueeze(-1), bounds=box, settings=GP_DEFAULTS)
    with torch.no_grad():
        assert torch.allclose(fit.candidates["cold"].posterior(Xt).mean, plain.posterior(Xt).mean, atol=1e-10)
    assert torch.equal(fit.candidates["cold"].input_transform.bounds, box)
    assert torch.equal(fit.candidates["multitask"].input_transform.bounds[1], Xs.max(0).values)  # the union: the source's range
