"""The report's objectives-against-process plot of a lab-only campaign with a constraint (a
user-tester's hardness [HV] + density campaign): the record it rings as best is the report's best
record, and its title is readable. Real campaign file, store and report."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dm_hpc.campaign.report import process_figure, write_report
from dm_hpc.data import Store
from tests.campaign.helpers import write_campaign


def _campaign(tmp_path):
    from dm_hpc.api import Campaign
    from dm_hpc.campaign import journal as jn

    lab = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 3, "measures": ["hardness", "density"]}
    path = write_campaign(tmp_path, name="anneal", fidelities=[lab], constraints=["density <= 8.2 g/cm3"],
                          objectives=[{"property": "hardness", "goal": "max", "unit": "HV"}],
                          space={"elements": {"Cu": [0.2, 0.8], "Ni": [0.2, 0.8]},
                                 "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}},
                          budget={"lab_experiments": 6})
    api = Campaign.load(path)
    samples = [("S1", 0.4, 450.0), ("S2", 0.5, 600.0), ("S3", 0.6, 800.0)]
    journal = jn.Journal(api.spec.run_dir / "journal.jsonl")
    journal.write("start")
    journal.write("lab_suggested", batch=1, samples=[
        {"sample_id": sid, "composition": {"Cu": cu, "Ni": 1 - cu}, "process": {"annealing_temperature": t + 273.15},
         "predicted": {}} for sid, cu, t in samples])
    journal.close()
    # S1 is the hardest but too dense; S2 the hardest that meets density <= 8.2; S3 lacks density
    api.add_measurements(pd.DataFrame({
        "sample_id": [s for s, _, _ in samples], "composition:Cu [at_frac]": [c for _, c, _ in samples],
        "composition:Ni [at_frac]": [1 - c for _, c, _ in samples],
        "process:treatment:annealing_temperature [degC]": [t for _, _, t in samples],
        "property:hardness [HV]": [260.0, 210.0, 300.0], "property:density [g/cm**3]": [8.6, 8.1, None]}))
    return api


def test_the_process_plot_rings_the_reports_best_record_and_its_title_fits(tmp_path):
    """The ring was the highest hardness of every record, constraint or not (S3, whose density is
    not measured, or S1, too dense), beside a best-records table that names S2; and the title
    ('...: objectives against process parameters (calculations have no process route)') ran off
    both sides of a one-plot figure, in a campaign without calculations."""
    api = _campaign(tmp_path)
    with Store.open(api.spec.store, "r") as store:
        df = store.to_dataframe()
    fig = process_figure(api.spec, df)
    [ax] = fig.axes
    rings = [line for line in ax.get_lines() if line.get_label() == "best"]
    assert len(rings) == 1
    assert np.allclose(rings[0].get_xdata(), [600.0]) and np.allclose(rings[0].get_ydata(), [210.0])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig._suptitle.get_window_extent(canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (box, fig.bbox.width)
    assert "calculations" not in fig._suptitle.get_text()  # a lab-only campaign has none
    summary = write_report(api.spec).read_text()
    best = summary[summary.index("## Best records"):]
    assert f"`{df.loc[df['sample_id'] == 'S2', 'record_id'].iloc[0]}`" in best.split("\n\n")[1]
