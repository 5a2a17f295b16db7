"""Strict names (issue 18 §6): every name, comment and id is matched whole, so a final newline
(Python's ``$`` matches before one) is refused at validation, before anything is journalled."""
from __future__ import annotations

import pytest
import yaml

from dm_hpc.campaign import CampaignError, parse_campaign
from dm_hpc.data import Composition, MaterialRecord, PropertyValue, Provenance, Source
from dm_hpc.runners.site import check_sbatch_option
from dm_hpc.runners.site import SiteProfile, SiteProfileError
from dm_hpc.service.state import UserError

from .helpers import dm, write_campaign


def _data(tmp_path, **over):
    return {**yaml.safe_load(write_campaign(tmp_path).read_text()), **over}


@pytest.mark.parametrize("where", ["name", "fidelity", "method", "runner"])
def test_a_trailing_newline_in_a_campaign_name_is_refused(tmp_path, where):
    data = _data(tmp_path)
    if where == "name":
        data["name"] = "yf\n"
    else:
        key = {"fidelity": "name", "method": "method", "runner": "runner"}[where]
        data["fidelities"][0][key] = data["fidelities"][0].get(key, "default") + "\n"
    with pytest.raises(CampaignError, match=r"\\n"):
        parse_campaign(data, "x")


def test_validate_refuses_the_name_and_nothing_is_journalled(tmp_path):
    path = write_campaign(tmp_path, name="yf")
    path.write_text(path.read_text().replace("name: yf", 'name: "yf\\n"'))
    proc = dm("validate", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "name" in proc.stderr, proc.stderr
    proc = dm("run", str(path), "-q", "--max-seconds", "5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "journal.jsonl").exists()


@pytest.mark.parametrize("option", ["--comment=FAIL\n", "--comment=dm-hpc\n#SBATCH --wrap=x", "--constraint=a\n"])
def test_a_site_sbatch_option_with_a_newline_is_refused(tmp_path, option):
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"name": "s", "extra_sbatch": [option]}))
    with pytest.raises(SiteProfileError, match="extra_sbatch"):
        SiteProfile.load(site)
    with pytest.raises(ValueError):
        check_sbatch_option(option)


@pytest.mark.parametrize("field", ["sample_id", "task_id", "campaign"])
def test_record_ids_with_a_newline_are_refused(field):
    prov = {"source": Source.experimental, "method": "lab"}
    rec = {"composition": Composition({"Cu": 1.0}), "properties": [PropertyValue(name="mixing_energy", value=0.1)]}
    if field == "sample_id":
        rec["sample_id"] = "S1\n"
    else:
        prov[field] = "x\n"
    with pytest.raises(ValueError, match="control characters"):
        MaterialRecord(**rec, provenance=Provenance(**prov))


@pytest.mark.parametrize("name", ["alice\n", "bob\r", "²", "a b", ""])
def test_a_user_id_is_matched_whole(tmp_path, name):
    from dm_hpc.service.state import Role, ServiceState

    state = ServiceState(tmp_path)
    with pytest.raises(UserError, match="user name"):
        state.add_user(name, Role.scientist)
