"""Models met by the user passes of stop 34, each a test that fails on the old code: a source's
batched joint posterior taken a slice of the batch at a time (a 3,496-row table source asked for
4.8 GB in one acquisition call and the OOM killer ended the run); the gaps covariance of a
model per output. Real BoTorch GPs."""
from __future__ import annotations

import torch
from botorch.models import SingleTaskGP

from dm_hpc.learn import transfer


def test_the_split_joint_covariance_equals_the_whole_one(monkeypatch):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(40, 3, generator=g, dtype=torch.double)
    gp = SingleTaskGP(X, X.sum(-1, keepdim=True).sin())
    gp.eval()
    rows = torch.rand(50, 4, 3, generator=g, dtype=torch.double)  # 50 candidates, 4 rows each
    whole = transfer.SourcePriorMean._joint_covariance(gp, rows)
    monkeypatch.setattr(transfer, "JOINT_ELEMENTS", (40 + 4) ** 2 * 3)  # 3 candidates at a time
    calls = []
    posterior = gp.posterior
    monkeypatch.setattr(gp, "posterior", lambda x: calls.append(x.shape[0]) or posterior(x))
    split = transfer.SourcePriorMean._joint_covariance(gp, rows)
    assert max(calls) == 3 and sum(calls) == 50
    assert split.shape == whole.shape == (50, 4, 4) and torch.allclose(split, whole)


def test_the_gaps_covariance_of_a_model_per_output_is_each_outputs_own():
    """`dm-hpc gaps` on a two-objective campaign with lab records (a model per output, ModelListGP)
    ended in AttributeError: 'list' object has no attribute 'unsqueeze' (a user pass on the guides)."""
    from botorch.models import ModelListGP

    from dm_hpc.acquire.gaps import posterior_covariance

    g = torch.Generator().manual_seed(2)
    X = torch.rand(12, 3, generator=g, dtype=torch.double)
    one = SingleTaskGP(X, X.sum(-1, keepdim=True))
    two = SingleTaskGP(X, X[:, :1] * 5)
    for m in (one, two):
        m.eval()
    Xc = torch.rand(6, 3, generator=g, dtype=torch.double)
    C, noise = posterior_covariance(ModelListGP(one, two), Xc)
    c1, n1 = posterior_covariance(one, Xc)
    c2, n2 = posterior_covariance(two, Xc)
    assert C.shape == (2, 6, 6) and noise.shape == (2,)
    assert (C[0] == c1[0]).all() and (C[1] == c2[0]).all() and noise[0] == n1[0] and noise[1] == n2[0]


def _one_lab_record(seed: int = 0):
    """40 calculations of ``f`` and one lab value of ``0.8 f + 0.5`` (task ids 0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(41, 3, generator=g, dtype=torch.double)
    f = torch.sin(3 * X[:, 0]) + X[:, 1] ** 2
    y = torch.cat([f[:40], 0.8 * f[40:] + 0.5]).unsqueeze(-1)
    return X, y, torch.cat([torch.zeros(40), torch.ones(1)])


def test_one_lab_record_does_not_become_the_prediction_everywhere():
    """A multi-task GP with one lab record beside 40 calculations predicted that value at every
    composition with a thousandth of the spread (hea-demo after its first lab sheet: 0.0307 +- 0.00016
    eV/atom): the lab task's own constant mean fitted the one value and its variance collapsed. The
    lab predictions now follow the calculations' trend, with an honest spread, and still hold the
    measured value where it was measured."""
    from dm_hpc.learn import fit_multitask, predict

    X, y, task = _one_lab_record()
    model = fit_multitask(X, y, task)
    g = torch.Generator().manual_seed(5)
    Xt = torch.rand(30, 3, generator=g, dtype=torch.double)
    truth = 0.8 * (torch.sin(3 * Xt[:, 0]) + Xt[:, 1] ** 2) + 0.5
    mean, sd = predict(model, Xt)
    assert mean[:, 0].std() > 0.5 * truth.std()  # the trend, not one value everywhere
    assert torch.corrcoef(torch.stack([mean[:, 0], truth]))[0, 1] > 0.9
    assert sd.min() > 0.01 * truth.std()
    at_record = predict(model, X[40:])[0][0, 0]
    assert abs(at_record - y[40, 0]) < 0.05 * truth.std()
    # Not asserted: that the old layout (a mean per task) still collapses here. It did on the Intel
    # Xeon this was found on and does not on an AMD EPYC (same code and libraries): where its fit
    # ends is floating-point path. Rebuilding that layout for models saved with it is tested below.


def test_a_saved_multitask_model_is_rebuilt_with_its_own_mean_layout():
    """Saved and rebuilt, the model with a shared mean predicts as fitted; a file saved before the
    shared mean (no ``own_mean_points``) is rebuilt with a mean per task, as it was fitted."""
    from dm_hpc.learn import fit_multitask, predict
    from dm_hpc.learn.persist import rebuild_surrogate, surrogate_state

    X, y, task = _one_lab_record(1)
    Xt = torch.rand(10, 3, dtype=torch.double)
    for own in (None, 0):
        model = (fit_multitask(X, y, task) if own is None
                 else fit_multitask(X, y, task, own_mean_points=0, task_offsets=False))
        state = surrogate_state(model, "multitask", X, y, task, 1)
        if own == 0:
            del state["own_mean_points"], state["task_offsets"]
        again = rebuild_surrogate(state)
        assert torch.allclose(predict(again, Xt)[0], predict(model, Xt)[0], atol=1e-8)


def test_the_offsets_ablation_is_saved_and_rebuilt_with_its_layout():
    """``task_offsets=True`` (an ablation) adds a kernel term; a saved model says so and is rebuilt
    with it (a strict load of its parameters, the same predictions)."""
    from dm_hpc.learn import fit_multitask, predict
    from dm_hpc.learn.persist import rebuild_surrogate, surrogate_state

    X, y, task = _one_lab_record(2)
    model = fit_multitask(X, y, task, task_offsets=True)
    state = surrogate_state(model, "multitask", X, y, task, 1)
    assert state["task_offsets"] is True
    Xt = torch.rand(10, 3, dtype=torch.double)
    assert torch.allclose(predict(rebuild_surrogate(state), Xt)[0], predict(model, Xt)[0], atol=1e-8)
