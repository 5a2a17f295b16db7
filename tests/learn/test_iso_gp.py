"""GPSettings.iso_points_per_dim: one shared length-scale below that many points per input, ARD from
there on. The decision model's setting (10, measured on the dev suite, benchmarks/README.md); the
reporting model's default is ARD at every size."""
import dataclasses

import torch

from dm_hpc.learn.gp import GP_DEFAULTS, GPSettings, fit_gp


def _data(n: int, d: int = 3):
    g = torch.Generator().manual_seed(1)
    X = torch.rand(n, d, generator=g, dtype=torch.double)
    return X, torch.sin(3 * X[:, :1]) + X[:, 1:2] ** 2


def _lengthscales(model) -> int:
    return model.covar_module.base_kernel.lengthscale.shape[-1]


ISO = dataclasses.replace(GP_DEFAULTS, iso_points_per_dim=10)


def test_isotropic_below_the_threshold_ard_from_it_on():
    X, Y = _data(40)
    assert _lengthscales(fit_gp(X[:5], Y[:5], settings=ISO)) == 1
    assert _lengthscales(fit_gp(X[:29], Y[:29], settings=ISO)) == 1
    assert _lengthscales(fit_gp(X[:30], Y[:30], settings=ISO)) == 3
    # the same prior on the single length-scale as on each of the ARD ones (its loc uses d)
    iso, ard = (fit_gp(X[:n], Y[:n], settings=ISO).covar_module.base_kernel.lengthscale_prior for n in (29, 30))
    assert torch.equal(iso.loc, ard.loc) and torch.equal(iso.scale, ard.scale)


def test_the_reporting_model_is_ard_at_every_size():
    assert GP_DEFAULTS.iso_points_per_dim == 0 and GPSettings().iso_points_per_dim == 0
    X, Y = _data(40)
    for n in (3, 10, 29, 40):
        assert _lengthscales(fit_gp(X[:n], Y[:n])) == 3


def test_warm_starts_across_the_switch():
    """An isotropic fit warm-starts an ARD one (its length-scale on every input) and back; with the
    warm start's hyper-parameters kept (``warm_maxiter=0``) the kernel is the warm start's."""
    X, Y = _data(40)
    iso = fit_gp(X[:29], Y[:29], settings=ISO)
    kept = fit_gp(X[:30], Y[:30], settings=ISO, warm_start=iso, warm_maxiter=0)
    assert _lengthscales(kept) == 1
    torch.testing.assert_close(kept.covar_module.base_kernel.lengthscale, iso.covar_module.base_kernel.lengthscale)
    ard = fit_gp(X[:30], Y[:30], settings=ISO, warm_start=iso)
    assert _lengthscales(ard) == 3
    back = fit_gp(X[:20], Y[:20], settings=ISO, warm_start=ard)
    assert _lengthscales(back) == 1
    # an ARD warm start kept as it is below the threshold
    assert _lengthscales(fit_gp(X[:20], Y[:20], settings=ISO, warm_start=ard, warm_maxiter=0)) == 3


def test_a_campaign_decides_with_one_length_scale_and_reports_with_ard():
    """One objective, one fidelity: the decision model (warped values) shares a length-scale below
    10 points per input; predictions come from the ARD reporting model."""
    from dm_hpc.learn.fitted import fit_fidelity_surrogate

    X, Y = _data(40)
    for n, decided in ((12, 1), (30, 3)):
        fitted = fit_fidelity_surrogate(X[:n], Y[:n], ["lab"] * n, outputs=["y"], target="lab", space=None,
                                        decision_outputs=(0,))
        assert _lengthscales(fitted.decision_model) == decided and _lengthscales(fitted.model) == 3


def test_a_decision_model_with_a_constraint_keeps_ard():
    """One objective and a constraint: the decision model also gives the rule's probability, and
    one length-scale was measured for an objective alone (review: the rule's Brier score 30-70x
    the ARD model's)."""
    from dm_hpc.learn.fitted import fit_fidelity_surrogate

    X, Y = _data(12)
    Y2 = torch.cat([Y, torch.sin(6 * X[:, 1:2])], -1)
    fitted = fit_fidelity_surrogate(X, Y2, ["lab"] * 12, outputs=["y", "rule"], target="lab", space=None,
                                    decision_outputs=(0,))
    assert fitted.decision_model.covar_module.base_kernel.lengthscale.shape[-1] == 3


def test_the_kernel_chosen_by_evidence_follows_which_inputs_matter():
    """``iso_by_evidence`` (an ablation): ARD where one of five inputs carries the signal (the data
    pay for four more length-scales), one length-scale where all five matter alike."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand(20, 5, generator=g, dtype=torch.double)
    by_evidence = dataclasses.replace(GP_DEFAULTS, iso_by_evidence=True)
    one = fit_gp(X, torch.sin(6 * X[:, :1]), settings=by_evidence)
    alike = fit_gp(X, torch.sin(3 * X).sum(-1, keepdim=True), settings=by_evidence)
    assert _lengthscales(one) == 5 and _lengthscales(alike) == 1
    ls = one.covar_module.base_kernel.lengthscale[0]
    assert ls[0] < ls[1:].min() / 5  # the active input's length-scale is the short one


def test_the_kernel_chosen_by_leave_one_out_follows_which_inputs_matter():
    """``iso_by_loo`` (an ablation): the kernel whose leave-one-out predictions are better kept,
    ARD where one of five inputs carries the signal, one length-scale where all five matter alike."""
    by_loo = dataclasses.replace(GP_DEFAULTS, iso_by_loo=True)
    for seed in range(3):
        X = torch.rand(20, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.double)
        one = fit_gp(X, torch.sin(6 * X[:, :1]), settings=by_loo)
        alike = fit_gp(X, torch.sin(3 * X).sum(-1, keepdim=True), settings=by_loo)
        assert _lengthscales(one) == 5 and _lengthscales(alike) == 1


def test_a_computed_column_leaves_the_decision_model_one_length_scale():
    """One objective and a rule the inputs decide (a raw-material cost cap): the rule is met by
    every candidate ranked, not weighed by the model, so the decision model is the objective's
    (found by review: the cost's column switched it to ARD)."""
    from dm_hpc.learn.fitted import fit_fidelity_surrogate

    X, Y = _data(12)
    Y2 = torch.cat([Y, X[:, :1] * 30.0], -1)
    fitted = fit_fidelity_surrogate(X, Y2, ["lab"] * 12, outputs=["y", "cost"], target="lab", space=None,
                                    decision_outputs=(0,), computed_outputs=(1,))
    assert fitted.decision_model.covar_module.base_kernel.lengthscale.shape[-1] == 1


def test_a_shared_prior_centre_ties_the_length_scales_as_tightly_as_its_spread():
    """``GPSettings.ard_spread``: an ARD kernel whose log length-scales depart from their common mean
    under ``Normal(0, spread)``. Tight, the inputs read nearly alike (as one length-scale); loose,
    the input that matters gets the shortest; BoTorch can draw restarts from the two priors."""
    from botorch.optim.utils import sample_all_priors

    g = torch.Generator().manual_seed(3)
    X = torch.rand(30, 4, generator=g, dtype=torch.double)
    Y = torch.sin(6 * X[:, :1])  # only the first input matters

    def spread_of_logs(spread):
        model = fit_gp(X, Y, settings=dataclasses.replace(GP_DEFAULTS, ard_spread=spread))
        logs = model.covar_module.base_kernel.lengthscale.log()[0]
        return model, logs, float(logs.max() - logs.min())

    _, tight, tight_range = spread_of_logs(0.05)
    model, loose, loose_range = spread_of_logs(2.0)
    assert tight.shape == (4,) and tight_range < 0.5 < loose_range
    assert int(loose.argmin()) == 0
    names = [name for name, *_ in model.named_priors()]
    assert any("lengthscale_centre_prior" in n for n in names) and any("lengthscale_spread_prior" in n for n in names)
    before = model.covar_module.base_kernel.lengthscale.clone()
    sample_all_priors(model)
    after = model.covar_module.base_kernel.lengthscale
    assert after.shape == before.shape and torch.isfinite(after).all() and not torch.equal(after, before)


def test_a_trend_kernel_is_centred_in_the_box_and_warm_starts():
    """``GPSettings.trend`` (an ablation): a linear kernel on the inputs centred in the unit cube
    beside the Matern. Its prior variance is least at the box's centre (no corner favoured), and
    its variance is carried by a warm start like the other hyper-parameters."""
    from dm_hpc.learn.kernels import CentredLinearKernel

    k = CentredLinearKernel()
    pts = torch.tensor([[0.5, 0.5], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.double)
    var = k(pts, diag=True).detach()
    assert float(var[0]) == 0.0 and torch.allclose(var[1:], var[1].expand(3))

    X, Y = _data(12)
    settings = dataclasses.replace(ISO, trend=True)
    first = fit_gp(X, Y, settings=settings)
    linear = [m for m in first.covar_module.modules() if isinstance(m, CentredLinearKernel)]
    from gpytorch.kernels import MaternKernel

    matern = [m for m in first.covar_module.modules() if isinstance(m, MaternKernel)]
    assert len(linear) == 1 and matern[0].lengthscale.shape[-1] == 1  # 12 points in 3 inputs: one length-scale
    kept = fit_gp(X, Y, settings=settings, warm_start=first, warm_maxiter=0)
    again = [m for m in kept.covar_module.modules() if isinstance(m, CentredLinearKernel)]
    assert torch.equal(again[0].variance, linear[0].variance)
