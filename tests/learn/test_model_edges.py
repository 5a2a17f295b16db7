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
