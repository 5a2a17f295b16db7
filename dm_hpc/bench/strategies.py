"""Pool-based selection strategies: given what has been measured, pick the next pool index.

Every strategy maximises (the harness flips the sign for ``--goal min``). Surrogates are refitted
every step with hyper-parameters warm-started from the previous step.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

#: name -> one-line description (the CLI lists these).
STRATEGIES: dict[str, str] = {
    "random": "uniform random choice from the pool",
    "gp-ei": "exact GP (ARD Matern-5/2) + analytic log expected improvement over the best observed value",
    "gp-lcb": "exact GP + confidence bound mean + 2 std (lower confidence bound when minimising)",
    "ensemble": "deep ensemble (5 MLPs) + expected improvement from its mean and spread",
    "default": "what campaigns use: fit_surrogate(kind='auto'), for the pick on Yeo-Johnson-warped values (learn.decision), + dm_hpc.acquire's default acquisition (qUCB; qLogNEI under outcome constraints)",
}


class Strategy:
    """Stateful selector; ``select`` returns the index of the next pool point to measure."""

    def __init__(self, name: str, X: Tensor, seed: int, sources: Sequence = ()):
        """``sources``: ``learn.transfer.Source`` tables on the pool's columns; the default strategy then
        fits ``fit_transfer`` (sources weighted by the target's own data) instead of the cold surrogate."""
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
        self.name = name
        self.X = X  # N x d pool, double
        self.bounds = torch.stack([X.min(0).values, torch.where(X.max(0).values > X.min(0).values, X.max(0).values, X.min(0).values + 1)])
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.model = None
        self.kind: str | None = None  # acquisition of the default strategy (None: DEFAULT_ACQUISITION)
        self.sources = list(sources)
        self.transfer = None  # the last TransferFit (weights, chosen kind) when sources are given
        self.history: list[tuple[str, dict[str, float]]] = []  # per step: chosen kind, source weights
        # with sources too, the pool's bounds: fit_transfer widens them for the models that read the
        # sources and keeps them for the cold one (a source in percent squashed it into 1 % of its cube)

    def refit_default(self, observed: list[int], y: Tensor) -> tuple[np.ndarray, Tensor, Tensor]:
        """The default strategy's model refitted on the measured points without sources
        (``fit_surrogate``, warm-started from the last fit, as a campaign refits): ``self.model``.
        Returns the unmeasured pool indices and the measured ``n x d`` inputs and ``n x 1``
        outcomes; strategy ablations change only what is chosen with the model."""
        from dm_hpc.learn import fit_surrogate

        remaining = np.setdiff1d(np.arange(self.X.shape[0]), np.asarray(observed))
        Xo, Yo = self.X[observed], y.reshape(-1, 1).to(torch.double)
        self.model = fit_surrogate(Xo, Yo, kind="auto", bounds=self.bounds, warm_start=self.model, seed=self.seed)
        return remaining, Xo, Yo

    def refit_decision(self, observed: list[int], y: Tensor) -> None:
        """The default strategy's decision model as a campaign with one objective fits it
        (``learn.decision.fit_decision_model``: on Yeo-Johnson-warped values, warm-started from the
        last one): ``self.model``; ``refit_default``'s model where the warp does not apply."""
        from dm_hpc.learn.decision import fit_decision_model

        Xo, Yo = self.X[observed], y.reshape(-1, 1).to(torch.double)
        model = fit_decision_model(Xo, Yo, [0], kind="auto", bounds=self.bounds, warm_start=self.model, seed=self.seed)
        if model is None:
            self.refit_default(observed, y)
        else:
            self.model = model

    def select(self, observed: list[int], y: Tensor) -> int:
        """observed: pool indices measured so far; y: their outcomes (``n``, to maximise)."""
        remaining = np.setdiff1d(np.arange(self.X.shape[0]), np.asarray(observed))
        if self.name == "random":
            return int(self.rng.choice(remaining))
        Xo, Yo = self.X[observed], y.reshape(-1, 1).to(torch.double)
        Xr = self.X[torch.as_tensor(remaining)]
        if self.name in ("gp-ei", "gp-lcb"):
            from botorch.acquisition.analytic import LogExpectedImprovement, UpperConfidenceBound

            from dm_hpc.learn import fit_gp

            self.model = fit_gp(Xo, Yo, bounds=self.bounds, warm_start=self.model, seed=self.seed)
            if self.name == "gp-ei":
                acq = LogExpectedImprovement(self.model, best_f=Yo.max())
            else:
                acq = UpperConfidenceBound(self.model, beta=4.0)
            with torch.no_grad():
                vals = acq(Xr.unsqueeze(-2))
            return int(remaining[int(torch.argmax(vals))])
        if self.name == "ensemble":
            from botorch.acquisition.analytic import LogExpectedImprovement

            from dm_hpc.learn import fit_ensemble

            self.model = fit_ensemble(Xo, Yo, seed=self.seed + len(observed), steps=300)
            with torch.no_grad():
                vals = LogExpectedImprovement(self.model, best_f=Yo.max())(Xr.unsqueeze(-2))
            return int(remaining[int(torch.argmax(vals))])
        # default: the campaign path
        from dm_hpc.acquire import Objective, select_from_pool

        if self.sources:
            from dm_hpc.learn.transfer import fit_transfer

            self.transfer = fit_transfer(Xo, Yo[:, 0], self.sources, bounds=self.bounds, warm_start=self.transfer, seed=self.seed)
            self.model = self.transfer.model
            self.history.append((self.transfer.kind, dict(self.transfer.weights)))
        else:
            self.refit_decision(observed, y)
        idx = select_from_pool(self.model, Xo, Xr, [Objective(0, True)], q=1, kind=self.kind)
        return int(remaining[idx[0]])


def make_strategy(name: str) -> Callable[[Tensor, int], Strategy]:
    return lambda X, seed: Strategy(name, X, seed)
