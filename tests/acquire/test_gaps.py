"""The gap-filling planner: proposals go where the existing data is thin, spread out; pending
points, pools, realised candidates, no model, and the calibrated ensemble."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dm_hpc.acquire import DesignSpace, GapFilling
from dm_hpc.acquire.planner import PlanRequest
from dm_hpc.acquire.points import MIN_SEPARATION, ProposedPoint
from dm_hpc.learn.fitted import fit_fidelity_surrogate

ELEMENTS = ("Cu", "Ni", "Pd")
OUTPUTS = ("mixing_energy", "density")


def half_covered(n: int, rng: np.random.Generator) -> np.ndarray:
    """Compositions covering the half of the Cu-Ni-Pd triangle where Ni >= Pd: ``n`` uniform
    inside, plus its corners and its Cu-Ni edge (the space's sampler draws unaries and binaries
    too, and in descriptor space they are far from any ternary)."""
    x = rng.dirichlet(np.ones(3), size=4 * n)
    edge = np.linspace(0.0, 1.0, 6)
    binaries = np.stack([edge, 1 - edge, np.zeros(6)], axis=1)  # Cu-Ni, both pure metals included
    return np.vstack([x[x[:, 1] > x[:, 2]][:n], binaries, [[0.5, 0.25, 0.25]]])


def measured(x: np.ndarray) -> np.ndarray:
    """``n x 2``: a smooth made-up mixing energy (eV/atom) and a rule-of-mixtures density (g/cm3)."""
    cu, ni, pd = x.T
    return np.column_stack([0.1 * cu * ni - 0.3 * ni * pd + 0.05 * pd * cu, 8.96 * cu + 8.9 * ni + 12.0 * pd])


def fit(kind: str):
    """A surrogate of 27 lab measurements covering only the Ni >= Pd half of the space."""
    space = DesignSpace(elements={el: (0.0, 1.0) for el in ELEMENTS})
    x = half_covered(20, np.random.default_rng(0))
    return fit_fidelity_surrogate(space.featurize(x), torch.tensor(measured(x)), ["lab"] * len(x), outputs=OUTPUTS,
                                  target="lab", space=space, kind=kind, all_fidelities=["emt", "lab"], seed=5)


@pytest.fixture(scope="module")
def fitted():
    return fit("auto")


def planner(space: DesignSpace) -> GapFilling:
    return GapFilling(space, OUTPUTS, {"emt": 0.02})


def ask(fitted, q: int, seed: int = 1, pending=(), admissible=None, space=None) -> list[ProposedPoint]:
    space = space if space is not None else fitted.space
    return planner(space).propose(PlanRequest(q, fitted, list(pending), ["emt"], seed, admissible))


def fractions(suggestions) -> np.ndarray:
    return np.array([[s.composition.get(el, 0.0) for el in ELEMENTS] for s in suggestions])


def pairwise(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(len(x), 1)]


def test_proposals_fill_the_uncovered_half_and_spread(fitted):
    props = ask(fitted, 6)
    x = fractions(props)
    assert len(props) == 6 and all(s.fidelity == "emt" for s in props)
    assert np.allclose(x.sum(1), 1.0)
    assert (x[:, 2] > x[:, 1]).all(), x  # every proposal in the Pd > Ni half, where no data is
    assert pairwise(x).min() >= MIN_SEPARATION  # spread over the empty half, not clustered
    nearest = np.sort(np.linalg.norm(x[:, None] - x[None], axis=-1), axis=1)[:, 1]
    assert nearest.mean() > 0.18, nearest  # well beyond the floor: the covariance spreads them
    for s in props:
        assert set(s.predicted["std"]) == set(OUTPUTS)
        assert s.predicted["variance_reduction"] > 0
        assert s.predicted["gain_per_cost"]["emt"] == pytest.approx(s.predicted["variance_reduction"] / 0.02)
    gains = [s.predicted["variance_reduction"] for s in props]
    assert gains == sorted(gains, reverse=True)  # greedy: each pick removes less than the one before


def test_pending_points_are_avoided(fitted):
    first = ask(fitted, 3)
    more = ask(fitted, 3, pending=first)
    x_first, x_more = fractions(first), fractions(more)
    assert np.linalg.norm(x_more[:, None] - x_first[None], axis=-1).min() >= MIN_SEPARATION
    # the three pending points already take the best spots: the new ones remove less variance
    assert more[0].predicted["variance_reduction"] < first[0].predicted["variance_reduction"]


def test_without_a_model_the_space_is_filled_evenly(fitted):
    props = ask(None, 5, seed=2, space=fitted.space)
    x = fractions(props)
    assert len(props) == 5 and not fitted.space.violations(x)
    assert pairwise(x).min() > 0.2
    assert all(s.predicted == {"mean": {}, "std": {}} for s in props)


def test_a_pool_gives_distinct_pool_points_and_skips_pending_ones(fitted):
    grid = [{"Cu": a / 10, "Ni": b / 10, "Pd": (10 - a - b) / 10} for a in range(11) for b in range(11 - a)]
    pool = DesignSpace.from_pool([{el: f for el, f in c.items() if f > 0} for c in grid], elements=list(ELEMENTS))
    on_grid = {tuple(round(c[el], 6) for el in ELEMENTS) for c in grid}
    first = ask(fitted, 4, space=pool)
    more = ask(fitted, 4, space=pool, pending=first)
    keys = [tuple(round(v, 6) for v in row) for row in fractions(first + more)]
    assert len(keys) == 8 and set(keys) <= on_grid
    assert len(set(keys)) == 8  # pending pool points are not proposed again
    assert (fractions(first)[:, 2] > fractions(first)[:, 1]).all()  # still where the data is not


def test_admissible_candidates_only(fitted):
    """With ``admissible`` the candidates are realised (here: to a 0.1 grid) and known points
    dropped before scoring, so every proposal is a realised, new, distinct point."""
    known = {(0.2, 0.2, 0.6), (0.1, 0.3, 0.6), (0.3, 0.1, 0.6), (0.2, 0.1, 0.7)}

    def admissible(p: ProposedPoint) -> ProposedPoint | None:
        row = tuple(round(p.composition.get(el, 0.0), 1) for el in ELEMENTS)
        if abs(sum(row) - 1) > 1e-9 or row in known:
            return None
        return ProposedPoint(p.fidelity, {el: f for el, f in zip(ELEMENTS, row) if f > 0}, p.process)

    props = ask(fitted, 5, admissible=admissible)
    rows = [tuple(round(v, 9) for v in r) for r in fractions(props)]
    assert len(props) == 5 and len(set(rows)) == 5
    assert all(np.allclose(np.array(r) * 10, np.round(np.array(r) * 10)) for r in rows)  # realised
    assert not {tuple(round(v, 1) for v in r) for r in rows} & known
    assert ask(fitted, 5, admissible=lambda p: None) == []  # nothing new: says so, proposes nothing


def test_calibrated_ensemble_with_two_outputs():
    """The large-data surrogate has no joint covariance: gap filling uses its diagonal variances
    (two outputs here, mixing energy and density) and still spreads the batch."""
    from dm_hpc.learn import surrogate_kind

    fitted = fit("ensemble")
    assert surrogate_kind(fitted.model) == "calibrated-ensemble" and fitted.model.num_outputs == 2
    props = ask(fitted, 4)
    x = fractions(props)
    assert len(props) == 4 and np.allclose(x.sum(1), 1.0)
    assert pairwise(x).min() >= MIN_SEPARATION
    gains = [s.predicted["variance_reduction"] for s in props]
    assert all(g > 0 for g in gains) and gains == sorted(gains, reverse=True)


def test_a_computed_output_is_no_gap_to_fill():
    """A model of (strength, density) where the density is computed from the composition: the
    picks are the strength model's alone, and the density is reported computed, std 0 (its model
    steered the picks and showed a spread before, found by review)."""
    import numpy as np
    import torch
    from botorch.models import ModelListGP

    from dm_hpc.acquire.gaps import GapFilling
    from dm_hpc.acquire.planner import PlanRequest
    from dm_hpc.learn import fit_gp
    from dm_hpc.learn.fitted import FittedSurrogate
    from tests.acquire.test_exact_outputs import SPACE, density, strength

    f, p = SPACE.sample(25, np.random.default_rng(0))
    X = SPACE.featurize(f, p)
    alone = fit_gp(X, torch.tensor(strength(f)[:, None]))
    both = ModelListGP(alone, fit_gp(X, density(X)[:, None]))

    def picks(model, outs, computed):
        fitted = FittedSurrogate(model, outs, ("emt",), "emt", SPACE, X)
        return GapFilling(SPACE, list(outs), {"emt": 1.0}, computed=computed).propose(PlanRequest(4, fitted, [], ["emt"], 0))

    want = picks(alone, ("strength",), {})
    got = picks(both, ("strength", "density"), {"density": density})
    assert [pt.composition for pt in got] == [pt.composition for pt in want]
    lacking = picks(alone, ("strength", "density"), {"density": density})  # the model need not hold it
    assert [pt.composition for pt in lacking] == [pt.composition for pt in want]
    for pt in got + lacking:
        feats = SPACE.featurize(*SPACE.from_dicts([(pt.composition, pt.process)]))
        assert pt.predicted["std"]["density"] == 0.0
        assert abs(pt.predicted["mean"]["density"] - float(density(feats)[0])) < 1e-9
        assert pt.predicted["std"]["strength"] > 0
