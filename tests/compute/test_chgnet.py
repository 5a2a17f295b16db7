"""CHGNet (optional `mlip` extra): the middle fidelity that covers Fe, Cr, Co, Mn."""
from __future__ import annotations

import math

import pytest

from dm_hpc.compute import calculate, result_to_record

pytest.importorskip("chgnet", reason="chgnet not installed (pip install 'dm-hpc[mlip]')")


def test_chgnet_fe_bcc_lattice_and_fecr_mixing_energy():
    fe = calculate("Fe", "chgnet", properties=["lattice_parameter"])
    assert fe.ok and fe.lattice == "bcc"
    assert abs(fe.property_dict()["lattice_parameter"] - 2.83) / 2.83 < 0.02
    a = calculate("Fe0.5Cr0.5", "chgnet", seed=2)
    b = calculate("Fe0.5Cr0.5", "chgnet", seed=2)
    assert a.ok and math.isfinite(a.property_dict()["mixing_energy"])
    assert a.fidelity == "mlip" and result_to_record(a).record_id == result_to_record(b).record_id
