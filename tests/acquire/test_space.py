import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dm_hpc.acquire import DesignSpace, DesignSpaceError


@settings(max_examples=30, deadline=None)
@given(
    n_el=st.integers(2, 8),
    max_el=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    cap=st.floats(0.3, 1.0),
)
# upper bounds one ulp short of reaching a sum of one: the space accepts what float rounding took
# away (a 1e-12 tolerance), so the test must not call it infeasible (found by Hypothesis)
@example(n_el=2, max_el=1, seed=0, cap=0.9999999999999999)
def test_samples_respect_simplex_bounds_and_max_elements(n_el, max_el, seed, cap):
    els = ["Fe", "Ni", "Co", "Cr", "Mn", "Al", "Ti", "Cu"][:n_el]
    max_el = min(max_el, n_el)
    if cap * max_el < 1.0 - 1e-12:  # infeasible beyond rounding: the space must say so
        with pytest.raises(DesignSpaceError):
            DesignSpace(elements={e: (0.0, cap) for e in els}, max_elements=max_el)
        return
    bounds = {e: (0.0, cap) for e in els}
    bounds[els[0]] = (0.05, cap)  # one required element
    if max_el < 1:
        return
    space = DesignSpace(elements=bounds, max_elements=max_el, process={"temperature": (900.0, 1400.0)})
    rng = np.random.default_rng(seed)
    f, p = space.sample(500, rng)
    assert np.allclose(f.sum(1), 1.0, atol=1e-6)
    assert (f >= space.lower - 1e-9).all() and (f <= space.upper + 1e-9).all()
    assert ((f > 0).sum(1) <= max_el).all()
    assert (p >= 900).all() and (p <= 1400).all()
    f2, p2 = space.neighbours(f[:10], p[:10], 5, rng)
    assert space.violations(f2, p2) == []


def test_excluded_elements_never_appear():
    space = DesignSpace(elements={e: (0.0, 1.0) for e in ["Fe", "Ni", "Co"]}, excluded={"Co"})
    assert space.element_names == ["Fe", "Ni"]


def test_infeasible_bounds_rejected():
    with pytest.raises(DesignSpaceError):
        DesignSpace(elements={"Fe": (0.6, 1.0), "Ni": (0.6, 1.0)})


def test_from_dicts_reverses_to_dicts_and_tolerates_other_points():
    space = DesignSpace(elements={e: (0.0, 1.0) for e in ["Fe", "Ni", "Co"]}, process={"temperature": (900.0, 1400.0)})
    f, p = space.sample(5, np.random.default_rng(3))
    f2, p2 = space.from_dicts(space.to_dicts(f, p))
    assert np.allclose(f2, f) and np.allclose(p2, p)
    # a record of a wider campaign: Cr is not in the space, the temperature is unknown
    f3, p3 = space.from_dicts([({"Fe": 0.5, "Cr": 0.5}, {})])
    assert f3.tolist() == [[0.5, 0.0, 0.0]] and p3.tolist() == [[1150.0]]
    f0, p0 = space.from_dicts([])
    assert f0.shape == (0, 3) and p0.shape == (0, 1)
    # points said to be of this space (propose's pending points): the same two mistakes are named
    with pytest.raises(ValueError, match="'Cr'"):
        space.from_dicts([({"Fe": 0.5, "Cr": 0.5}, {"temperature": 1000.0})], strict=True)
    with pytest.raises(ValueError, match="temperature"):
        space.from_dicts([({"Fe": 1.0}, {})], strict=True)
    f4, p4 = space.from_dicts([({"Fe": 0.25, "Co": 0.75}, {"temperature": 1000.0})], strict=True)
    assert f4.tolist() == [[0.25, 0.0, 0.75]] and p4.tolist() == [[1000.0]]


def test_an_exclusion_that_leaves_fewer_elements_than_max_elements_is_a_valid_space():
    """Excluding Pd from a Cu-Ni-Pd space with max_elements 3 made every campaign file of it
    "invalid campaign: IndexError: index 2 is out of bounds": the bounds check indexed the sums of
    the largest upper bounds past the two elements left. Two elements under a cap of three are
    simply all allowed."""
    space = DesignSpace(elements={"Cu": (0.0, 1.0), "Ni": (0.0, 1.0), "Pd": (0.0, 1.0)}, max_elements=3,
                        excluded=frozenset({"Pd"}))
    assert space.element_names == ["Cu", "Ni"]
    x, _ = space.sample(20, np.random.default_rng(0))
    assert np.allclose(x.sum(axis=1), 1.0) and x.shape == (20, 2)
    with pytest.raises(DesignSpaceError, match="upper bounds of the allowed elements sum to 0.8 < 1"):
        DesignSpace(elements={"Cu": (0.0, 0.4), "Ni": (0.0, 0.4), "Pd": (0.0, 1.0)}, max_elements=3,
                    excluded=frozenset({"Pd"}))


def test_elements_that_must_be_present_but_cannot_reach_one_under_max_elements_are_refused():
    """Cu and Ni at 0.1-0.2 each (a lower bound > 0: in every composition) under max_elements 2
    validated, since the two largest upper bounds (Pd's 1 and 0.2) reach one, and every random
    point was Cu0.5Ni0.5, outside both bounds (found by the semantic campaign fuzz, with Al at
    [1e-9, 1e-9] under max_elements 1). The elements that must be present take their places first."""
    with pytest.raises(DesignSpaceError, match=r"Cu, Ni.* sum to 0\.4.*raise max_elements to 3"):
        DesignSpace(elements={"Cu": (0.1, 0.2), "Ni": (0.1, 0.2), "Pd": (0.0, 1.0)}, max_elements=2)
    with pytest.raises(DesignSpaceError, match=r"Al.* 1e-09.*raise max_elements to 2"):
        DesignSpace(elements={"Al": (1e-9, 1e-9), "Cu": (0.0, 1.0)}, max_elements=1)
    space = DesignSpace(elements={"Cu": (0.1, 0.2), "Ni": (0.1, 0.2), "Pd": (0.0, 1.0)}, max_elements=3)
    x, _ = space.sample(20, np.random.default_rng(0))
    assert space.violations(x) == []


def test_min_elements_is_honoured_by_every_draw_and_checked():
    """``space.min_elements`` was validated and documented ("at least this many elements in one
    suggestion") but never reached the design space: a campaign asking for at least three of five
    elements was sent binaries and pure metals. Random draws and their neighbours now keep to it,
    ``violations`` names a row below it, and a minimum the space cannot hold is refused."""
    bounds = {el: (0.0, 1.0) for el in ("Co", "Cr", "Fe", "Mn", "Ni")}
    space = DesignSpace(elements=bounds, max_elements=4, min_elements=3)
    rng = np.random.default_rng(0)
    frac, proc = space.sample(500, rng)
    counts = (frac > 1e-6).sum(1)
    assert counts.min() == 3 and counts.max() == 4, np.bincount(counts)
    near, _ = space.neighbours(frac[:50], proc[:50], 8, rng)
    assert ((near > 1e-6).sum(1) >= 3).all() and not space.violations(near)
    assert space.violations(np.array([[0.5, 0.5, 0, 0, 0]])) == ["fewer than 3 elements"]
    with pytest.raises(DesignSpaceError, match="min_elements = 5 is above max_elements = 4"):
        DesignSpace(elements=bounds, max_elements=4, min_elements=5)
    with pytest.raises(DesignSpaceError, match=r"min_elements = 5, but only 4 elements are left \(Co, Cr, Fe, Mn\) "
                                               r"once Ni is excluded"):
        DesignSpace(elements=bounds, min_elements=5, excluded=frozenset({"Ni"}))
    # lower bounds that fill every composition leave no room for the others the minimum needs (a
    # fuzzed space: Al and Pd at 0.5 each, min_elements 3, parsed, and every draw broke the rule)
    with pytest.raises(DesignSpaceError, match=r"min_elements = 3, but the lower bounds of Al, Pd sum to 1"):
        DesignSpace(elements={"Al": (0.5, 0.5), "Cu": (0.0, 1.0), "Ni": (0.0, 0.0), "Pd": (0.5, 0.5)},
                    max_elements=3, min_elements=3)
    fits = DesignSpace(elements={"Al": (0.45, 0.45), "Cu": (0.0, 1.0), "Pd": (0.45, 0.45)}, min_elements=3)
    assert not fits.violations(fits.sample(20, rng)[0])


def test_anchors_come_first_among_the_candidates_and_are_checked():
    """``DesignSpace.anchors``: first among a continuous space's candidates, with points close
    around them; a table of the wrong width is refused where it is made, not at the first draw."""
    import numpy as np
    import pytest

    from dm_hpc.acquire import DesignSpace
    from dm_hpc.acquire.space import ANCHOR_NEIGHBOURS, DesignSpaceError

    corner = np.array([[0.98, 0.01, 0.01]])
    space = DesignSpace(elements={"Cu": (0, 1), "Ni": (0, 1), "Pd": (0, 1)}, anchors=corner)
    frac, _ = space.candidates(64, np.random.default_rng(0))
    assert len(frac) == 1 + ANCHOR_NEIGHBOURS + 64
    assert np.allclose(frac[0], corner[0])
    assert np.abs(frac[1:1 + ANCHOR_NEIGHBOURS] - corner).max() <= 0.03 + 1e-9  # mixed at most 3 % with a random point
    with pytest.raises(DesignSpaceError, match="one column per element"):
        DesignSpace(elements={"Cu": (0, 1), "Ni": (0, 1)}, anchors=np.array([[1.0]]))
