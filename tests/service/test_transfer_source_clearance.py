"""Review: a model-file transfer source holding embargoed records reached a public reader's predictions
and report (the portal fitted with it whatever the clearance). The portal's rule for store records
holds for model sources too: a reader is served a model that learned only from records at or below
their clearance; the source is left out for them, and they are told a source was, never which."""
from __future__ import annotations

import numpy as np

from dm_hpc.data.access import AccessLevel
from tests.campaign.test_transfer_access_review import _pub, secret_file  # noqa: F401 -- fixture

COMPS = [{"Cu": 0.2, "Ni": 0.3, "Pd": 0.5}, {"Cu": 0.7, "Pd": 0.3}]


def _desk(tmp_path, secret_file):  # noqa: F811 -- the fixture, passed on
    from dm_hpc.service.campaigns import CampaignDesk

    folder = tmp_path / "campaigns"
    folder.mkdir()
    _pub(folder, secret_file)
    return CampaignDesk(folder)


def test_a_public_reader_is_not_served_a_model_source_holding_embargoed_records(tmp_path, secret_file):  # noqa: F811
    desk = _desk(tmp_path, secret_file)
    public = desk.predict("pub", COMPS, None, AccessLevel.public)
    assert all(row["model"]["sources_withheld"] == 1 for row in public)
    assert public[0]["model"]["records"] == 8
    assert desk._fitted("pub", AccessLevel.public).transfer is False  # the campaign's own records alone
    # a reader cleared for the file's records is served the model with it (another model, another name)
    cleared = desk.predict("pub", COMPS, None, AccessLevel.embargoed)
    assert all(row["model"]["sources_withheld"] == 0 for row in cleared)
    assert desk._fitted("pub", AccessLevel.embargoed).transfer is True
    assert cleared[0]["model"]["name"] != public[0]["model"]["name"]
    assert not np.allclose([r["mean"]["mixing_energy"] for r in public], [r["mean"]["mixing_energy"] for r in cleared])
    # what the campaign computed with the source (its lab queue's predictions, its own report) is not theirs
    assert not desk.sees_everything("pub", AccessLevel.public) and desk.sees_everything("pub", AccessLevel.embargoed)


def test_a_public_readers_report_leaves_the_source_out_without_naming_it(tmp_path, secret_file):  # noqa: F811
    desk = _desk(tmp_path, secret_file)
    text = (desk.report("pub", AccessLevel.public) / "summary.md").read_text()
    for secret in ("secret.pt", "campaign secret", "secret-model", "Gain:", "| used ("):
        assert secret not in text, secret
    assert "1 transfer source left out: it holds records above your clearance" in text
    assert desk.report_dir("pub", AccessLevel.public).name == "public"  # not the campaign's own report
    full = (desk.report("pub", AccessLevel.embargoed) / "summary.md").read_text()
    assert "model file `secret.pt`" in full and "left out: it holds records" not in full
