"""Where BoTorch's compiled acquisition kernel is cached (issue 9: the 18 s planner stall)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

MULTI_OBJECTIVE = (
    "import os, sys, torch, dm_hpc; before = os.environ.get('TORCH_EXTENSIONS_DIR'); "
    "from botorch.models import SingleTaskGP; "
    "from dm_hpc.acquire.acquisition import Objective, build_acquisition; "
    "X = torch.rand(6, 2, dtype=torch.double); "
    "m = SingleTaskGP(X, torch.stack([X.sum(-1), X[:, 0] - X[:, 1]], -1)); "
    "build_acquisition(m, X, [Objective(0), Objective(1)], []); "
    "print(before, os.environ.get('TORCH_EXTENSIONS_DIR'), sys.prefix, sep='|')"
)


def _last_line(code: str, env: dict) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1].split("|")


def test_kernel_cache_folder_is_the_environments_and_set_only_where_the_kernel_is_built():
    """`import dm_hpc` changes no environment variable; a multi-objective acquisition puts torch's
    extension builds in this environment's folder; a folder the user chose is kept."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"}
    before, after, prefix = _last_line(MULTI_OBJECTIVE, env)
    assert before == "None"
    assert after == os.path.join(prefix, "torch_extensions")
    kept = _last_line("import os; from dm_hpc.acquire.kernels import use_environment_cache; use_environment_cache(); "
                      "print(os.environ['TORCH_EXTENSIONS_DIR'])", {**env, "TORCH_EXTENSIONS_DIR": "/tmp/mine"})
    assert kept == ["/tmp/mine"]


NINJA_ON_PATH = (
    "import os, shutil; from dm_hpc.acquire.kernels import use_environment_cache; before = os.environ['PATH']; "
    "use_environment_cache(); use_environment_cache(); "
    "print(os.path.realpath(shutil.which('ninja')), shutil.which('python'), "
    "os.environ['PATH'] == before, "
    "os.environ['PATH'].split(os.pathsep).count(os.path.dirname(shutil.which('ninja'))), "
    "sep='|')"
)


def test_the_kernel_is_built_by_the_environments_ninja_whatever_path_finds_first(tmp_path):
    """Debian's ninja 1.11 and the ninja wheel's 1.13 each took the other's kernel build for a
    changed command and compiled it again (35 s in the demo's planner thread, no calculation in
    flight): ``make venv`` builds with the venv off PATH, a user runs with it activated. Where the
    kernel is built, ``ninja`` is the environment's own whatever PATH has first; nothing else on
    PATH changes, a second call adds nothing, and an activated environment's PATH is left alone."""
    import sysconfig

    own = os.path.join(sysconfig.get_path("scripts"), "ninja")
    if not os.access(own, os.X_OK):
        pytest.skip("this environment has no ninja of its own")
    other = tmp_path / "system-bin"  # another ninja (and python) ahead of the environment's
    other.mkdir()
    for name in ("ninja", "python"):
        (other / name).write_text("#!/bin/sh\nexit 0\n")
        (other / name).chmod(0o755)
    scripts = os.path.dirname(own)
    rest = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and os.path.realpath(d) != os.path.realpath(scripts)]
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "PATH": os.pathsep.join([str(other), *rest])}
    ninja, python, unchanged, entries = _last_line(NINJA_ON_PATH, env)
    assert ninja == os.path.realpath(own)
    assert python == str(other / "python")  # only ninja is pinned: what tasks start stays as it was
    assert unchanged == "False" and entries == "1"
    activated = {**env, "PATH": os.pathsep.join([scripts, str(other), *rest])}
    ninja, _, unchanged, _ = _last_line(NINJA_ON_PATH, activated)
    assert ninja == os.path.realpath(own) and unchanged == "True"


def _gp_and_candidates(n: int, m: int, seed: int = 0):
    import torch

    from dm_hpc.learn import fit_surrogate

    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 3, generator=g, dtype=torch.double)
    Y = torch.sin(6 * X[:, :1]) + X[:, 1:2] * X[:, 2:3] + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.double)
    return fit_surrogate(X, Y), torch.rand(m, 3, generator=g, dtype=torch.double)


def test_screened_confidence_bound_is_exact_where_the_batch_is_chosen():
    """Issue 23: proposing from a 2,500-point GP spent most of its time on the exact variance of
    every candidate (n^2 each). The screen computes it only where it can matter: the best values
    and their order are those of the full computation, the others are never above their truth."""
    import torch

    from dm_hpc.acquire.acquisition import Objective, build_acquisition, exact_ucb, screening_gp

    model, X_cand = _gp_and_candidates(900, 1500)
    screen = screening_gp(model)
    assert screen is not None and screen.train_inputs[0].shape[-2] < model.train_inputs[0].shape[-2]
    with torch.no_grad():  # fewer observations: the screen's variance bounds the model's from above
        assert (screen.posterior(X_cand[:200].unsqueeze(-2)).variance
                >= model.posterior(X_cand[:200].unsqueeze(-2)).variance - 1e-12).all()
    for objective in (Objective(0, True), Objective(0, False)):
        acq = build_acquisition(model, X_cand, [objective])
        full = exact_ucb(acq, X_cand, keep=len(X_cand))  # every candidate exact
        fast = exact_ucb(acq, X_cand, keep=64)
        top = full.topk(64)
        assert torch.equal(fast.topk(64).indices, top.indices)
        assert torch.allclose(fast[top.indices], top.values, rtol=0, atol=1e-9)
        assert (fast <= full + 1e-9).all()
        assert (fast < full - 1e-6).any()  # the screen did skip candidates (a lower bound there)
        excluded = torch.zeros(len(X_cand), dtype=torch.bool)
        excluded[top.indices[:40]] = True  # e.g. already measured: the 64 best of the rest are exact
        rest = full.masked_fill(excluded, float("-inf")).topk(64).indices
        assert torch.allclose(exact_ucb(acq, X_cand, keep=64, exclude=excluded)[rest], full[rest], rtol=0, atol=1e-9)


def test_no_screen_for_models_it_cannot_bound():
    """Small GPs are computed exactly (no screen), as are single-task GPs with a prior of their own
    (the bound holds for SingleTaskGP's prior with a Gaussian likelihood only)."""
    import torch
    from botorch.models import SingleTaskGP

    from dm_hpc.acquire.acquisition import screening_gp

    small, _ = _gp_and_candidates(300, 10)
    assert screening_gp(small) is None

    class OwnPrior(SingleTaskGP):
        def forward(self, x):
            return super().forward(x)

    X = torch.rand(900, 2, dtype=torch.double)
    assert screening_gp(OwnPrior(X, X.sum(-1, keepdim=True)).eval()) is None


def test_screened_confidence_bound_with_a_noise_level_per_row():
    """Issue 23: the large-data model may fix a noise level per row (``learn.hetero``). The screen
    keeps each kept row's own noise, so its variance still bounds the model's, and the best values
    are those of the full computation; with the noise of the other rows (or the mean noise) it
    would not be a bound."""
    import torch

    from dm_hpc.acquire.acquisition import Objective, build_acquisition, exact_ucb, screening_gp
    from dm_hpc.learn import fit_surrogate
    from dm_hpc.learn.hetero import is_heteroscedastic

    g = torch.Generator().manual_seed(4)
    X = torch.rand(1800, 3, generator=g, dtype=torch.double)
    sd = 0.02 + 0.3 * X[:, :1] ** 2  # noise that varies 16-fold over the inputs
    Y = torch.sin(6 * X[:, :1]) + X[:, 1:2] * X[:, 2:3] + sd * torch.randn(1800, 1, generator=g, dtype=torch.double)
    model = fit_surrogate(X, Y, kind="auto", seed=0, subset_points=900, fit_points=100)
    assert is_heteroscedastic(model)
    X_cand = torch.rand(1500, 3, generator=g, dtype=torch.double)
    screen = screening_gp(model)
    assert screen is not None and screen.likelihood.noise.shape[-1] == screen.train_inputs[0].shape[-2] < 900
    with torch.no_grad():
        assert (screen.posterior(X_cand[:200].unsqueeze(-2)).variance
                >= model.posterior(X_cand[:200].unsqueeze(-2)).variance - 1e-12).all()
    acq = build_acquisition(model, X_cand, [Objective(0, True)])
    full = exact_ucb(acq, X_cand, keep=len(X_cand))
    fast = exact_ucb(acq, X_cand, keep=64)
    top = full.topk(64)
    assert torch.equal(fast.topk(64).indices, top.indices)
    assert torch.allclose(fast[top.indices], top.values, rtol=0, atol=1e-9)
    assert (fast <= full + 1e-9).all() and (fast < full - 1e-6).any()


def test_lazy_greedy_batch_evaluates_fewer_candidates_for_the_same_batch_value(monkeypatch):
    """Issue 23: the greedy qUCB batch evaluated its whole shortlist with every pending set (at
    10,000 records 40 % of proposing 16). Lazily, fewer evaluations give a batch of the same value."""
    import torch
    from botorch.acquisition.monte_carlo import qUpperConfidenceBound
    from botorch.sampling import SobolQMCNormalSampler

    from dm_hpc.acquire import acquisition
    from dm_hpc.acquire.acquisition import Objective, build_acquisition, greedy_select

    model, X_cand = _gp_and_candidates(600, 800, seed=1)
    judge = qUpperConfidenceBound(model, beta=acquisition.UCB_BETA,
                                  sampler=SobolQMCNormalSampler(torch.Size([4096]), seed=0))
    evaluated = []
    real_evaluate = acquisition.evaluate
    monkeypatch.setattr(acquisition, "evaluate", lambda acq, X, chunk=1024: evaluated.append(len(X)) or real_evaluate(acq, X, chunk))
    results = {}
    for chunk in (10**6, acquisition.LAZY_CHUNK):  # the whole shortlist at once, then lazily
        monkeypatch.setattr(acquisition, "LAZY_CHUNK", chunk)
        evaluated.clear()
        torch.manual_seed(0)
        idx, _, X_all = greedy_select(build_acquisition(model, X_cand, [Objective(0, True)]), X_cand, 8)
        with torch.no_grad():
            results[chunk] = (float(judge(X_all[idx].unsqueeze(0))), sum(evaluated), len(set(idx)))
    (full, n_full, k_full), (lazy, n_lazy, k_lazy) = results.values()
    assert k_full == k_lazy == 8
    assert n_lazy < n_full
    assert abs(lazy - full) <= 0.01 * abs(full)


def test_greedy_batch_from_the_shortlists_joint_posterior_picks_what_the_model_picks(monkeypatch):
    """Issue 23: the greedy qUCB rounds asked the GP for the posterior of every batch they
    evaluated (n^2 per point; half of proposing 16 at 1,000 records). One joint posterior of the
    shortlist, the picks and the pending points gives the same batches: same picks, same values,
    with the caller's pending points and for a minimised objective too, and the model is asked
    far fewer times."""
    import torch

    from dm_hpc.acquire.acquisition import Objective, build_acquisition, greedy_select

    model, X_cand = _gp_and_candidates(600, 800, seed=2)
    calls = []
    real_posterior = model.posterior
    monkeypatch.setattr(model, "posterior", lambda X, *a, **k: calls.append(X.shape) or real_posterior(X, *a, **k))
    for objective, pending in ((Objective(0, True), None), (Objective(0, False), X_cand[-3:])):
        picks = {}
        for reuse in (False, True):
            calls.clear()
            torch.manual_seed(0)  # the acquisition's sampler draws its seed from torch's generator
            acq = build_acquisition(model, X_cand, [objective], X_pending=pending)
            idx, values, _ = greedy_select(acq, X_cand[:-3], 8, X_pending=pending, reuse_posterior=reuse)
            picks[reuse] = (idx, values, len(calls))
        (idx_model, val_model, n_model), (idx_set, val_set, n_set) = picks[False], picks[True]
        assert len(set(idx_set)) == 8
        assert idx_set == idx_model
        assert torch.allclose(torch.tensor(val_set), torch.tensor(val_model), rtol=1e-9, atol=1e-12)
        assert n_set < n_model / 2


def test_greedy_batch_from_the_shortlists_joint_posterior_takes_repeated_candidates():
    """A campaign on a two-element space shortlists the same composition several times, and
    the running points again: the joint covariance of a batch is singular. Sampling factorises it
    with GPyTorch's jitter, as the model's own posterior does (it raised at once when the
    covariance was a plain tensor), and picks what the model picks."""
    import torch

    from dm_hpc.acquire.acquisition import Objective, build_acquisition, greedy_select
    from dm_hpc.learn import fit_surrogate

    x = torch.linspace(0, 1, 11, dtype=torch.double)
    grid = torch.stack([x, 1 - x], -1)  # Cu-Ni in steps of 0.1
    X = grid[[1, 2, 4, 6]]
    model = fit_surrogate(X, (X[:, :1] - 0.3) ** 2)
    candidates = torch.cat([grid] * 4)
    for pending in (None, grid[:2]):
        picks = {}
        for reuse in (False, True):
            torch.manual_seed(0)
            acq = build_acquisition(model, X, [Objective(0, True)], X_pending=pending)
            picks[reuse] = greedy_select(acq, candidates, 4, X_pending=pending, reuse_posterior=reuse)[:2]
        (idx_model, val_model), (idx_set, val_set) = picks[False], picks[True]
        # the same compositions: which of a composition's four copies wins a tie is floating-point
        # noise (it differed between two CPUs), not a choice
        same = [i % len(grid) for i in idx_set]
        assert same == [i % len(grid) for i in idx_model] and len(set(same)) == 4
        assert torch.allclose(torch.tensor(val_set), torch.tensor(val_model), rtol=1e-6)
