"""The one comparison of a value with a rule's bound (a campaign's ``raw_material_cost <= 200``,
a design target ``valence_electron_concentration >= 8``): what the realiser, the acquisition's
exact rules and design's exact targets all ask, so that a point is never allowed by one and
refused by another."""
from __future__ import annotations

#: Relative slack forgiven on the allowed side of a bound (at least 1e-9 absolute): a point made at
#: a cap is on it (a cost computed at the cap's composition comes back 1e-14 above it), and VEC 8.0
#: meets ``>= 8``.
RULE_SLACK = 1e-9


def within(value, op: str, bound: float):
    """``value`` (a float, a NumPy array or a torch tensor) on the allowed side of ``bound``:
    ``op`` is ``<=``/``<`` or ``>=``/``>`` (a strict bound is read as its closed form: a computed
    value on it is the bound up to round-off)."""
    slack = RULE_SLACK * max(1.0, abs(float(bound)))
    return value >= bound - slack if op in (">=", ">") else value <= bound + slack


__all__ = ["RULE_SLACK", "within"]
