"""A source's batched joint posterior is taken a slice of the batch at a time (stop 34): a
campaign with a 3,496-row table source asked for 4.8 GB in one acquisition call and the OOM
killer ended it. Real BoTorch GPs."""
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
