"""Gap filling: proposals go where the existing data is thin, spread out; coverage map; the command."""
from __future__ import annotations

import numpy as np
import pytest

from dm_hpc.campaign import parse_campaign
from dm_hpc.campaign.dataset import training_set
from dm_hpc.campaign.coverage import coverage_map, gaps_command
from dm_hpc.campaign.gaps import MIN_SEPARATION, gap_suggestions
from dm_hpc.campaign.strategy import fit_model
from dm_hpc.data import Composition, MaterialRecord, PropertyValue, Provenance, Source, Store

ELEMENTS = ("Cu", "Ni", "Pd")
SPEC = {
    "name": "gaps-test",
    "mode": "gaps",
    "seed": 5,
    "space": {"elements": {el: [0.0, 1.0] for el in ELEMENTS}},
    "objectives": [{"property": "mixing_energy", "goal": "min"}],
    "constraints": ["density <= 11 g/cm3"],
    "fidelities": [
        {"name": "emt", "kind": "calculation", "method": "emt"},
        {"name": "lab", "kind": "experiment", "cost": 1},
    ],
    "budget": {"calculations": 10},
}


def lab_record(x: np.ndarray, k: int) -> MaterialRecord:
    """A measured sample with a smooth made-up mixing energy and a rule-of-mixtures density."""
    cu, ni, pd = x
    return MaterialRecord(
        composition=Composition({el: float(v) for el, v in zip(ELEMENTS, x) if v > 0}),
        properties=[
            PropertyValue(name="mixing_energy", value=float(0.1 * cu * ni - 0.3 * ni * pd + 0.05 * pd * cu)),
            PropertyValue(name="density", value=float(8.96 * cu + 8.9 * ni + 12.0 * pd)),
        ],
        sample_id=f"S{k:03d}",
        provenance=Provenance(source=Source.experimental, method="lab", campaign="imported"),
    )


def half_covered(n: int, rng: np.random.Generator) -> np.ndarray:
    """Compositions covering the half of the Cu-Ni-Pd triangle where Ni >= Pd: ``n`` uniform
    inside, plus its corners and its Cu-Ni edge (the space's sampler draws unaries and binaries
    too, and in descriptor space they are far from any ternary)."""
    x = rng.dirichlet(np.ones(3), size=4 * n)
    edge = np.linspace(0.0, 1.0, 6)
    binaries = np.stack([edge, 1 - edge, np.zeros(6)], axis=1)  # Cu-Ni, both pure metals included
    return np.vstack([x[x[:, 1] > x[:, 2]][:n], binaries, [[0.5, 0.25, 0.25]]])


@pytest.fixture(scope="module")
def lab_store(tmp_path_factory):
    """A real store of 27 experimental records covering only the Ni >= Pd half of the space."""
    root = tmp_path_factory.mktemp("gaps")
    with Store.open(root / "store", "a") as store:
        store.ingest([lab_record(x, k) for k, x in enumerate(half_covered(20, np.random.default_rng(0)))])
    campaign = parse_campaign({**SPEC, "store": str(root / "store"), "workdir": str(root / "run")}, "gaps.yaml")
    with Store.open(root / "store") as store:
        df = store.to_dataframe()
    data = training_set(campaign, df)
    assert len(data) == 27 and set(data.sources) == {"experimental"}
    fitted = fit_model(campaign, data)
    model, space = fitted.model, fitted.space
    return root, campaign, df, model, space


def fractions(suggestions) -> np.ndarray:
    return np.array([[s.composition.get(el, 0.0) for el in ELEMENTS] for s in suggestions])


def test_proposals_fill_the_uncovered_half_and_spread(lab_store):
    _, campaign, _, model, space = lab_store
    props = gap_suggestions(campaign, model, space, q=6, pending=[], seed=1)
    x = fractions(props)
    assert len(props) == 6 and all(s.fidelity == "emt" for s in props)
    assert np.allclose(x.sum(1), 1.0)
    assert (x[:, 2] > x[:, 1]).all(), x  # every proposal in the Pd > Ni half, where no data is
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(len(x), 1)]
    assert d.min() >= MIN_SEPARATION, d.min()  # spread over the empty half, not clustered
    nearest = np.sort(np.linalg.norm(x[:, None] - x[None], axis=-1), axis=1)[:, 1]
    assert nearest.mean() > 0.18, nearest  # well beyond the floor: the covariance spreads them
    for s in props:
        assert set(s.predicted["std"]) == {"mixing_energy", "density"}
        assert s.predicted["variance_reduction"] > 0 and s.predicted["gain_per_cost"]["emt"] > 0
    gains = [s.predicted["variance_reduction"] for s in props]
    assert gains == sorted(gains, reverse=True)  # greedy: each pick removes less than the one before


def test_pending_points_are_avoided(lab_store):
    _, campaign, _, model, space = lab_store
    first = gap_suggestions(campaign, model, space, q=3, pending=[], seed=1)
    pending = [(s.composition, s.process) for s in first]
    more = gap_suggestions(campaign, model, space, q=3, pending=pending, seed=1)
    x_first, x_more = fractions(first), fractions(more)
    assert np.linalg.norm(x_more[:, None] - x_first[None], axis=-1).min() >= MIN_SEPARATION
    # the three pending points already take the best spots: the new ones remove less variance
    assert more[0].predicted["variance_reduction"] < first[0].predicted["variance_reduction"]


def test_without_data_the_space_is_filled_evenly(lab_store):
    _, campaign, _, _, space = lab_store
    props = gap_suggestions(campaign, None, space, q=5, pending=[], seed=2)
    x = fractions(props)
    assert len(props) == 5 and not space.violations(x)
    assert np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(5, 1)].min() > 0.2


def test_coverage_map_before_and_after(lab_store, tmp_path):
    _, campaign, df, model, space = lab_store
    props = gap_suggestions(campaign, model, space, q=4, pending=[], seed=1)
    png = coverage_map(campaign, df, props, tmp_path / "cov.png", model=model)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
    # "after" from real new data: the model refitted on more records
    more = df.copy()
    png2 = coverage_map(campaign, more, props, tmp_path / "cov2.png", before_df=df.iloc[:10])
    assert png2.exists() and png2.stat().st_size > 10000


def test_gaps_command(lab_store, tmp_path):
    root, campaign, _, _, _ = lab_store
    path = tmp_path / "gaps.yaml"
    import yaml

    path.write_text(yaml.safe_dump({**SPEC, "store": str(root / "store"), "workdir": str(tmp_path / "run")}))
    suggestions, png = gaps_command(root / "store", path, 4, tmp_path / "out")
    assert len(suggestions) == 4 and png == tmp_path / "out" / "coverage.png" and png.exists()
    x = fractions(suggestions)
    assert (x[:, 2] > x[:, 1]).all()
    csv = (tmp_path / "out" / "gaps.csv").read_text().splitlines()
    assert len(csv) == 5 and "predicted_std:mixing_energy" in csv[0]
    from dm_hpc.campaign import CampaignError

    with pytest.raises(CampaignError, match="no store"):
        gaps_command(tmp_path / "nowhere", path, 4, tmp_path / "out")


def test_calibrated_ensemble_with_two_outputs(lab_store, tmp_path):
    """The large-data surrogate has no joint covariance: gap filling uses its diagonal variances
    (two outputs here, mixing energy and density) and still spreads the batch."""
    root, _, df, _, _ = lab_store
    campaign = parse_campaign({**SPEC, "store": str(root / "store"), "workdir": str(tmp_path / "run"),
                               "learning": {"surrogate": "ensemble"}}, "gaps.yaml")
    fitted = fit_model(campaign, training_set(campaign, df))
    from dm_hpc.learn import surrogate_kind

    assert surrogate_kind(fitted.model) == "calibrated-ensemble" and fitted.model.num_outputs == 2
    props = gap_suggestions(campaign, fitted.model, fitted.space, q=4, pending=[], seed=1)
    x = fractions(props)
    assert len(props) == 4 and np.allclose(x.sum(1), 1.0)
    assert np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(4, 1)].min() >= MIN_SEPARATION
    gains = [s.predicted["variance_reduction"] for s in props]
    assert all(g > 0 for g in gains) and gains == sorted(gains, reverse=True)
