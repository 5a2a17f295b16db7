"""Campaigns: the YAML file, the asynchronous loop, resume, the lab hand-off and reports.

Public face::

    load_campaign(path) -> CampaignSpec         validated; CampaignError names file and field
    CampaignManager(campaign).run() -> Summary
    write_suggestions(campaign, out), ingest_lab_sheet(campaign, sheet)
    write_report(campaign) -> Path            summary.md and PNG plots

Uses learn, acquire, runners, compute and data; nothing imports this package but the CLI.
"""
from dm_hpc.campaign.spec import CampaignError, CampaignSpec, json_schema, load_campaign, parse_campaign

__all__ = ["CampaignSpec", "CampaignError", "json_schema", "load_campaign", "parse_campaign"]
