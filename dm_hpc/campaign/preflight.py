"""Preflight: what a campaign needs beyond a valid file, checked before any budget is spent.

``dm-hpc validate`` and the start of ``dm-hpc run`` ask ``preflight``: every calculation method
exists and can describe every element of the design space with its settings (EMT's element
list, GPAW's PAW setups, QE's pseudopotentials), every fidelity delivers every objective and
constraint (a method derives it, the lab ``measures`` it: the surrogate learns from records
that hold them all), every process parameter is realised (only a lab does: calculations ignore
process), every named file exists (pool, column maps, site profile, emulation
table, transfer tables and model files; a model file must load and predict its property), and a method's code is installed where the runner is local. Durations and satisfiable
constraints are checked in the spec itself. ``transfer_warnings`` names store-query transfer
sources that select no record yet (said, not refused: the store may fill before they are needed).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from dm_hpc.campaign.spec import CampaignError, CampaignSpec, RunnerKind
from dm_hpc.runners.site import profile_path


def _space_elements(c: CampaignSpec) -> list[str]:
    """The elements a candidate may hold (``dataset.design_elements``): an ``excluded`` one needs
    no method able to calculate it, nor a price."""
    if c.space.elements:  # without pandas: validate stays light
        return sorted(el for el in c.space.elements if el not in c.space.excluded)
    from dm_hpc.campaign.dataset import design_elements  # empty for a pool that cannot be read (reported apart)

    return sorted(design_elements(c))


def _role(c: CampaignSpec, prop: str) -> str:
    return "objective" if prop in {o.property for o in c.objectives} else "constraint"


def delivery_problems(c: CampaignSpec) -> list[str]:
    """Properties a fidelity of ``c`` cannot deliver, each naming the fidelities (and registry
    methods) that could. Every fidelity must deliver every property: the surrogate learns from
    records holding all of them, so a calculation without one would fail or be wasted."""
    from dm_hpc.compute import UnknownMethodError, get_method, method_names

    derives: dict[str, tuple[str, ...]] = {}
    unknown = False
    for f in c.calculations:
        try:  # a Maker delivers what its outputs map, whatever its cell recipe's method derives
            derives[f.name] = tuple(f.maker.outputs) if f.maker is not None else get_method(f.method).properties
        except UnknownMethodError:
            unknown = True  # reported with the method checks
    lab = c.lab
    own = list(dict.fromkeys(f.method for f in c.calculations if f.method))
    from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES

    out = []
    for prop in c.properties:
        if prop in ANALYTIC_PROPERTIES:
            # a function of the composition (``dataset`` derives it for every record): a lab that
            # measures hardness under a cost cap was told to list raw_material_cost in its measures,
            # which would have asked the lab to fill in the price of its alloy
            if prop == "raw_material_cost":  # but only where every element has a price
                from dm_hpc.compute.descriptors import PRICE_FILE, price_table

                unpriced = [el for el in _space_elements(c) if el not in price_table()["prices"]]
                if unpriced:
                    out.append(f"{_role(c, prop)} {prop}: {PRICE_FILE.name} has no price for {', '.join(unpriced)}, so "
                               f"no record holding {'it' if len(unpriced) == 1 else 'them'} has a cost and the model "
                               "never fits; add the price to that file or leave the element out of the space")
            continue
        role = _role(c, prop)
        by = [name for name, props in derives.items() if prop in props]
        if lab is not None and (lab.measures is None or prop in lab.measures):
            by.append(lab.name)
        methods = [m for m in method_names() if prop in get_method(m).properties]
        # none computes it here, which is not to say no one could (a formation energy is no lab-only
        # property to a computational scientist): name the campaign's methods, then the registry
        none = (f"none of this campaign's methods ({', '.join(own)}) computes {prop}, nor does any other "
                "registered method" if own else f"no registered calculation method computes {prop}")
        if not by and unknown:
            continue  # a misspelt method (`emtt`) is the one problem to name: it may well deliver it
        if not by:
            lab_hint = (f"list it in fidelities.{lab.name}.measures" if lab is not None
                        else f"add an experiment fidelity (kind: experiment, measures: [{prop}])")
            could = (f" (methods that derive it: {', '.join(methods)})" if methods
                     else f"; {none}, so only a lab can measure it")
            out.append(f"{role} {prop}: no fidelity of this campaign delivers it{could}; {lab_hint}")
            continue
        for f in c.calculations:
            if f.name in derives and prop not in derives[f.name] and f.maker is not None:
                out.append(f"fidelities.{f.name}.maker.outputs: no path for {prop} ({role}; mapped: "
                           f"{', '.join(f.maker.outputs)}): its calculations would not deliver it; map it")
            elif f.name in derives and prop not in derives[f.name] and not methods:  # only the lab delivers it
                out.append(f"fidelities.{f.name}: {none}: the {role} can come from the lab only, and the "
                           f"{f.name} calculations would fail; remove the fidelity (a lab-only campaign) or drop {prop}")
            elif f.name in derives and prop not in derives[f.name]:
                out.append(f"fidelities.{f.name}: method {f.method} cannot derive {prop} ({role}; delivered "
                           f"by {', '.join(by)}; methods that derive it: {', '.join(methods)}): its calculations "
                           f"would fail; remove the fidelity (a lab-only campaign) or drop {prop}")
        if lab is not None and lab.measures is not None and prop not in lab.measures:
            out.append(f"fidelities.{lab.name}: measures does not list {prop} ({role}; delivered by "
                       f"{', '.join(by)}): the lab's records could not train the model; add it to measures")
    return out


def process_problems(c: CampaignSpec) -> list[str]:
    """Process parameters no fidelity of ``c`` realises or measures: only a lab anneals or rolls a
    sample; a calculation is of the composition alone, so its records never carry the parameter
    and the model could not learn it (suggestions would set it by chance). Refused, as a property
    no fidelity delivers is: no run of this file could ever use it."""
    if c.lab is not None:
        return []
    return [f"space.process.{name}: no fidelity of this campaign realises or measures it (calculations ignore "
            f"process parameters: their records never carry {name}, so the model cannot learn it and "
            f"suggestions set it by chance); add an experiment fidelity (kind: experiment) that makes the "
            f"samples, or remove {name} from space.process" for name in c.space.process]


def realisation_problems(c: CampaignSpec) -> list[str]:
    """An element the space requires (lower bound above 0) that no fidelity's realisation can
    hold (``realise.realiser``): below half an atom of the largest cell a calculation builds
    (Al at [1e-9, 0.001] in cells of up to 256 atoms), or bounds that no composition at the
    lab's ``precision`` meets (Au at [0.05, 0.2] at a step of 0.5; sums and element counts as
    ``DesignSpace`` checks them, on the bounds rounded inward to the step); ``space.min_elements``
    above the atoms of the largest cell or the lab's steps; a cell setting (``lattice``,
    ``n_atoms``) no cell has. Such a campaign validated, then its first plan or ``suggest`` found no
    point it could make."""
    if c.space.pool is not None or not c.space.elements:
        return []  # a pool's rows are taken as they are

    from dm_hpc.acquire.space import DesignSpace, DesignSpaceError
    from dm_hpc.compute import UnknownMethodError, get_method
    from dm_hpc.compute.structures import CELL_SIZES, cell_count, ground_state_lattice, step_range

    bounds = {el: b for el, b in c.space.elements.items() if el not in c.space.excluded}
    out = []
    least = c.space.min_elements
    for f in c.calculations:
        try:
            settings = get_method(f.method).merged_settings(f.settings)
        except (UnknownMethodError, ValueError):
            continue  # reported by ``problems`` itself (a setting of the wrong kind was a traceback here)
        lattice, n = str(settings.get("lattice", "auto")), settings.get("n_atoms", "auto")
        if lattice != "auto" and lattice not in CELL_SIZES:
            out.append(f"fidelities.{f.name}: settings.lattice must be fcc, bcc or auto, not {lattice!r}")
            continue
        # auto: each composition takes the lattice most of it prefers, so a fixed n_atoms must be a
        # cell of every lattice the space's elements prefer (16 atoms is bcc's alone: a Cu-Ni-Pd space
        # validated and no point could be built), and the largest cell is the largest of those
        lattices = [lattice] if lattice != "auto" else sorted({ground_state_lattice(el) for el in bounds} or {"fcc"})
        sizes = tuple(sorted(set.intersection(*(set(CELL_SIZES[name]) for name in lattices))))
        largest = max(max(CELL_SIZES[name]) for name in lattices)
        if n != "auto":
            n = cell_count(n)
            if n not in sizes:  # every point failed to build, with nothing said before the run
                out.append(f"fidelities.{f.name}: settings.n_atoms must be auto or one of "
                           f"{', '.join(map(str, sizes))} ({' and '.join(lattices)} cells"
                           f"{', the lattices of this space' if lattice == 'auto' else ''}), not {n!r}")
                continue
        n = largest if n == "auto" else n
        small = [f"{el} [{lo:g}, {hi:g}]" for el, (lo, hi) in bounds.items() if lo > 0 and hi * n < 0.5]
        if small:
            out.append(f"fidelities.{f.name}: {', '.join(small)} must be present (a lower bound above 0) but "
                       f"stays below one atom of a {n}-atom cell, the largest {f.method} builds here, so no "
                       f"calculation can hold it; raise its upper bound to at least {1 / n:.3g} or its lower bound to 0")
        if least > n:
            out.append(f"fidelities.{f.name}: space.min_elements = {least}, but its largest cell has {n} atoms: no "
                       f"calculation holds {least} elements; lower min_elements or raise settings.n_atoms")
    lab = c.lab
    if lab is not None and lab.precision:
        n = max(1, round(1.0 / lab.precision))
        steps = {el: step_range(lo, hi, n) for el, (lo, hi) in bounds.items()}
        required = [max(steps[el][0], 1) for el, (lo, _) in bounds.items() if lo > 0]
        if sum(required) + max(0, least - len(required)) > n:  # each element present takes a step at least
            out.append(f"fidelities.{lab.name}: at its precision {lab.precision:g} a composition has {n} steps, too "
                       f"few for {max(least, len(required))} elements of at least one step each (space.min_elements "
                       "and the elements with a lower bound above 0); refine the precision or ask for fewer elements")
            return out
        rounded = {el: (lo / n, hi / n) for el, (lo, hi) in steps.items()}
        try:
            for el, (lo, hi) in rounded.items():
                if lo > hi:
                    raise DesignSpaceError(f"{el} [{bounds[el][0]:g}, {bounds[el][1]:g}] holds no multiple of it")
            DesignSpace(elements=rounded, max_elements=c.space.max_elements, min_elements=c.space.min_elements)
        except DesignSpaceError as exc:
            out.append(f"fidelities.{lab.name}: no composition at its precision {lab.precision:g} (the atomic-fraction "
                       f"step the lab makes) lies inside space.elements' bounds: {exc}; widen the bounds or refine "
                       f"the precision")
    return out


#: Compositions drawn from the space to find one that meets the analytic constraints (twice a
#: random start's candidates: a rule the start could still meet is not refused).
RULE_DRAWS = 2048


def _rule_words(c: CampaignSpec, rule: tuple[str, str, float], value: float | None = None) -> str:
    """A rule as the author reads it (``raw_material_cost <= 30 USD/kg``, in the unit the campaign
    shows the property in), or ``value`` in that unit."""
    name, op, bound = rule
    unit = c.shown_unit(name)
    unit = "" if unit in ("", "1", "dimensionless") else f" {unit}"
    shown = c.shown(name, bound if value is None else value)
    return f"{name} {op} {shown:g}{unit}" if value is None else f"{shown:.4g}{unit}"


def rule_problems(c: CampaignSpec) -> list[str]:
    """Constraints on a property the composition decides (``raw_material_cost <= 3 USD/kg``,
    ``valence_electron_concentration >= 11.5``) that no composition drawn from the space meets,
    alone or together. Every point that breaks one is not made (``realise.realiser``), so such a
    campaign validated and then planned nothing. A pool's rows are filtered as they are."""
    from dm_hpc.campaign.realise import analytic_rules, meeting, rule_corner

    rules = analytic_rules(c)
    if not rules:
        return []
    import numpy as np

    from dm_hpc.acquire.space import DesignSpaceError
    from dm_hpc.campaign.strategy import design_space
    from dm_hpc.compute.descriptors import analytic_values
    from dm_hpc.data.rules import within

    try:
        space = design_space(c)
    except (DesignSpaceError, OSError, ValueError):
        return []  # said by the space's own check, or the pool's reading (``input_problems``)
    if space.pool is not None:  # every row, exactly
        frac = space.pool[0]
        if len(frac) and not meeting(rules, frac, space.element_names).any():
            alone = [r for r in rules if not meeting([r], frac, space.element_names).any()]
            said = " and ".join(_rule_words(c, r) for r in alone or rules)
            return [f"constraints: {said}: none of the pool's {len(frac)} candidates meets "
                    f"{'it' if len(alone or rules) == 1 else 'them together'}; every one would be refused: relax the "
                    f"bound or add candidates to the pool"]
        return []
    if not c.space.elements:
        return []
    rng = np.random.default_rng(0)
    elements = space.element_names
    met = dict.fromkeys(rules, False)
    extreme: dict[tuple, float] = {}

    def batches():
        # the corners where a rule linear in the fractions is most easily met first (a VEC of
        # Cu0.99 with five elements at 0.002 each is in no random draw of six), then draws in chunks
        # of 256: a rule most of the space meets is settled at once
        corners = [comp for rule in rules if (comp := rule_corner(c, rule)) is not None]
        if corners:
            yield np.array([[comp.get(el, 0.0) for el in elements] for comp in corners])
        for _ in range(0, RULE_DRAWS, 256):
            yield space.sample(256, rng)[0]

    for frac in batches():  # each chunk's values at once (``analytic_values``), as a pool's rows
        together = np.ones(len(frac), bool)
        for rule in rules:
            name, op, bound = rule
            values = analytic_values(name, frac, elements)
            ok = np.isnan(values) | within(values, op, bound)  # undefined (no price) breaks nothing
            together &= ok
            met[rule] = met[rule] or bool(ok.any())
            known = values[~np.isnan(values)]
            if known.size:
                here = float(known.min() if op == "<=" else known.max())
                extreme[rule] = (min if op == "<=" else max)(extreme.get(rule, here), here)
        if together.any():
            return []  # one composition meets every rule

    out = []
    for rule in rules:
        if not met[rule] and rule in extreme:
            word = "lowest" if rule[1] == "<=" else "highest"
            out.append(f"constraints: {_rule_words(c, rule)}: no composition of the space meets it (the {word} of "
                       f"{RULE_DRAWS} compositions drawn from it is {_rule_words(c, rule, extreme[rule])}); every "
                       f"point would be refused: relax the bound or widen space.elements")
    if not out and all(met.values()):
        out.append(f"constraints: {' and '.join(_rule_words(c, r) for r in rules)}: no composition of the space drawn "
                   f"({RULE_DRAWS}) meets them together; every point would be refused: relax a bound or widen "
                   f"space.elements")
    return out


def problems(c: CampaignSpec, check_codes: bool = False) -> list[str]:
    """Everything that would make the campaign fail once started (empty: none).

    ``check_codes``: also require each method's code to be runnable here (true at ``run`` on
    the local runner; a cluster campaign is validated on a login node without the codes).
    """
    from dm_hpc.compute import UnknownMethodError, get_method, unavailable_reason
    from dm_hpc.compute.methods import SettingError

    files = []
    for f in c.fidelities:
        files += [(f"fidelities.{f.name}.emulate_from", f.emulate_from),
                  (f"fidelities.{f.name}.emulate_map", f.emulate_map)]
    if c.runner.site is not None and Path(c.runner.site).suffix:
        files.append(("runner.site", c.runner.site))
    out = input_problems(c, files)
    if c.runner.site is not None and not Path(c.runner.site).suffix and not _site_file(c).is_file():
        out.append(f"runner.site: no site profile '{c.runner.site}' in {_site_file(c).parent}")
    if check_codes:
        out += _scheduler_problems(c)
    out += delivery_problems(c)
    out += process_problems(c)
    out += emulation_problems(c)
    out += _resource_problems(c)
    out += realisation_problems(c)
    out += rule_problems(c)
    elements = _space_elements(c)
    for f in c.calculations:
        try:
            method = get_method(f.method)
            settings = method.merged_settings(f.settings)
        except SettingError as exc:  # out of range: one line naming the setting, its value and range
            out.append(f"fidelities.{f.name}.settings.{exc.key}: {exc.detail}")
            continue
        except (UnknownMethodError, ValueError) as exc:
            out.append(f"fidelities.{f.name}: {str(exc).strip(chr(34))}")
            continue
        missing = method.unsupported(elements, f.settings)
        if missing:
            out.append(f"fidelities.{f.name}: method {f.method} cannot calculate {', '.join(missing)} "
                       f"(no potential, PAW setup or pseudopotential with {settings.get('xc', 'its settings')})")
        if check_codes and c.runner.kind == RunnerKind.local:
            why = unavailable_reason(method)
            if why:
                out.append(f"fidelities.{f.name}: method {f.method} cannot run here: {why}")
    return out


def _scheduler_problems(c: CampaignSpec) -> list[str]:
    """The Slurm commands a cluster runner submits with, where the run starts (a login node
    without the Slurm module loaded would fail at the first submission, mid-run)."""
    import shutil

    if c.runner.kind == RunnerKind.local:
        return []
    missing = [cmd for cmd in ("sbatch", "squeue") if shutil.which(cmd) is None]
    if not missing:
        return []
    return [f"runner.kind: {c.runner.kind.value} needs the Slurm commands, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH here (load the site's Slurm module, or "
            f"run where `sbatch --version` works)"]


def transfer_problems(c: CampaignSpec) -> list[str]:
    """Transfer sources that cannot be read: a missing table, a model file that is missing, damaged,
    foreign or does not predict the property it is to inform."""
    return [p for k in range(len(c.transfer.from_) if c.transfer is not None else 0) for p in source_problems(c, k)]


def source_problems(c: CampaignSpec, k: int) -> list[str]:
    """Why transfer source ``k`` of ``c`` cannot inform its model (``transfer_problems``; empty: it can)."""
    s = c.transfer.from_[k]
    out = [f"transfer.from.{k}.{field}: no such file: {path}"
           for field, path in (("table", s.table), ("table_map", s.table_map), ("model", s.model))
           if path is not None and not Path(path).is_file()]
    prop = s.property or c.objectives[0].property
    if s.table is not None and Path(s.table).is_file() and (s.table_map is None or Path(s.table_map).is_file()):
        from dm_hpc.campaign.dataset import matches, table_frame

        try:
            frame = table_frame(Path(s.table), s.table_map)
        except (ValueError, OSError) as exc:
            return out + [_unreadable(f"transfer.from.{k}.table", exc, None)]
        rows = frame[matches(s, frame)] if len(frame) else frame
        if prop not in rows.columns or not rows[prop].notna().any():
            out.append(f"transfer.from.{k}.table: {s.table} holds no {prop} value"
                       f"{' among the rows it selects' if len(rows) < len(frame) else ''}: the source could "
                       f"not inform the model (set property: to the column it measures, or drop the source)")
        else:
            out += _own_answers_problem(c, k, rows[rows[prop].notna()], prop)
    if s.table is None and s.model is None:
        from dm_hpc.campaign.dataset import _store_selection

        df = _store_df(c)
        rows = _store_selection(c, s, df)
        if prop in rows.columns:
            out += _own_answers_problem(c, k, rows[rows[prop].notna()], prop, df)
    if s.model is not None and Path(s.model).is_file():
        from dm_hpc.campaign.standard import ModelFileError, load_model_file

        try:
            file = load_model_file(s.model)
        except ModelFileError as exc:
            return out + [f"transfer.from.{k}.model: {exc}"]
        if prop not in file.properties:
            out.append(f"transfer.from.{k}.model: {s.model} predicts {', '.join(file.properties)}, not {prop} "
                       "(set property: to the one it is to inform)")
        seen = _own_records_in(c, file)
        if seen:
            out.append(f"transfer.from.{k}.model: {s.model} was trained on {seen} of this campaign's own records "
                       "(its provenance or a model it derives from lists them): a source must be related data, "
                       "not the campaign's own seen twice, or the guard scores it on records it has seen; name a "
                       "model trained on other records")
    return out


def _store_df(c: CampaignSpec):
    """The campaign store's records (``Store.to_dataframe``); empty without a readable store (a
    damaged one is `dm-hpc store check`'s to judge). Read once per committed state of the store
    (its manifest): validate asks for each source's own-answers check and for its warnings."""
    import pandas as pd

    from dm_hpc.data.layout import MANIFEST

    try:
        st = (Path(c.store) / MANIFEST).stat()
    except OSError:
        st = None
    if st is None and not (Path(c.store).is_dir() and any(Path(c.store).iterdir())):
        return pd.DataFrame()
    stamp = None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)
    return _read_store(str(Path(c.store).resolve()), stamp).copy(deep=False)


@lru_cache(maxsize=2)
def _read_store(store: str, stamp: tuple | None):
    import pandas as pd

    from dm_hpc.data import Store, StoreError

    try:
        with Store.open(store, "r") as opened:
            return opened.to_dataframe()
    except (StoreError, OSError):
        return pd.DataFrame()


def _own_answers_problem(c: CampaignSpec, k: int, rows, prop: str, df=None) -> list[str]:
    """A table or store source whose ``rows`` (those it selects holding ``prop``) are the campaign's
    own answers (``dataset.own_answers``: its records, or the table its lab emulates from): refused as
    a model file trained on its records is (``_own_records_in``); a run leaves those rows out."""
    from dm_hpc.campaign.dataset import lab_answers, own_answers

    s = c.transfer.from_[k]
    answers = lab_answers(c, prop, _store_df(c) if df is None else df, emulated=s.table is not None)
    seen = int(own_answers(rows, prop, answers).sum())
    if not seen:
        return []
    where = f"{s.table}" if s.table is not None else "the store records it selects"
    emulated = [f.name for f in c.fidelities if f.emulate_from is not None and s.table is not None
                and Path(f.emulate_from).resolve() == Path(s.table).resolve()]
    why = (f" (fidelities.{emulated[0]}.emulate_from answers the lab from the same table)" if emulated else "")
    return [f"transfer.from.{k}.{'table' if s.table is not None else 'from'}: {seen} of the rows of {where} holding "
            f"{prop} are this campaign's own answers (the source, composition and value of its records or of its "
            f"lab's table){why}: a source must be related data, not the campaign's own seen twice, or the guard scores "
            "it on the answers it is to predict; select other rows (a source: filter) or name other data"]


def _own_records_in(c: CampaignSpec, file) -> int:
    """How many of ``c``'s training records (its store's, as ``dataset.training_set`` selects them)
    the model ``file`` learned from (``dataset.own_in_model``); 0 without a readable store."""
    if not file.record_ids():
        return 0
    from dm_hpc.campaign.dataset import own_in_model, training_set

    df = _store_df(c)
    return own_in_model(file, training_set(c, df).record_ids) if len(df) else 0


def transfer_warnings(c: CampaignSpec) -> list[str]:
    """Store-query sources that select no record of the store holding their property: not a reason
    to refuse the run (another campaign or an import may fill the store first), but a misspelt
    filter validated silently and the campaign then learnt without the source it was written for.
    Also a source that mixes computed and experimental records in one task (``dataset.mixed_sources``)
    and a model file that holds restricted or embargoed records (``access_warnings``)."""
    return _query_warnings(c) + _mixed_warnings(c) + access_warnings(c)


def access_warnings(c: CampaignSpec) -> list[str]:
    """Model-file sources holding restricted or embargoed records (``standard.held_levels``, down the
    file's chain): the campaign's own model learns from them, and the portal serves a model with the
    source only to readers cleared for them (``transfer.withheld_sources``); others get one without."""
    from dm_hpc.campaign.standard import ModelFileError, held_levels, load_model_file

    out = []
    for k, s in enumerate(c.transfer.from_ if c.transfer is not None else ()):
        if s.model is None or not Path(s.model).is_file():
            continue
        try:
            levels = held_levels(load_model_file(s.model).provenance)
        except ModelFileError:
            continue  # ``source_problems`` names it
        above = ("its provenance does not say which access levels its records are at" if levels is None else
                 ", ".join(f"{levels[x]} {x}" for x in ("restricted", "embargoed") if levels.get(x)))
        if above:
            out.append(f"transfer.from.{k} ({s.name}): the model file {s.model} holds {above} record(s) "
                       "(they travel inside it): the portal serves a model with this source only to readers "
                       "cleared for them, others a model without it; reports and exported models of this "
                       "campaign hold them too")
    return out


def _mixed_warnings(c: CampaignSpec) -> list[str]:
    """Table and store sources whose rows are computed and experimental records in one task."""
    if c.transfer is None or all(s.model is not None for s in c.transfer.from_):
        return []  # before the import: validate of a campaign without sources reads no table library
    from dm_hpc.campaign.dataset import mixed_sources, source_rows

    readable = [s for s in c.transfer.from_ if s.model is None and (s.table is None or (
        Path(s.table).is_file() and (s.table_map is None or Path(s.table_map).is_file())))]
    try:
        rows = source_rows(c.model_copy(update={"transfer": c.transfer.model_copy(update={"from_": readable})}),
                           _store_df(c)) if readable else []
    except (OSError, ValueError):
        return []  # an unreadable table is ``source_problems``'s to name
    return [f"transfer.from ({name}): its rows mix computed and experimental records in one source task; the "
            "campaign's fidelities keep calculations and measurements apart: add `source: computed` or `source: "
            "experimental` (one source each) unless one task of both is meant" for name in mixed_sources(rows)]


def _query_warnings(c: CampaignSpec) -> list[str]:
    queries = [(k, s) for k, s in enumerate(c.transfer.from_ if c.transfer is not None else ())
               if s.table is None and s.model is None]
    if not queries:
        return []
    from dm_hpc.campaign.dataset import query_source_count

    df = _store_df(c)  # a damaged store is `dm-hpc store check`'s to judge; every source then matches nothing
    out = []
    for k, s in queries:
        if query_source_count(c, s, df):
            continue
        prop = s.property or c.objectives[0].property
        held = f"none of its {len(df)} records" if len(df) else "it holds no records yet"
        out.append(f"transfer.from.{k} ({s.name}): matches no record with {prop} in the store {c.store} ({held}): "
                   "the campaign learns without this source until such records arrive; check its filters "
                   "(`dm-hpc transfer suggest` lists the store's sources)")
    return out


def _pool_problems(c: CampaignSpec) -> list[str]:
    """A pool table that cannot be read as candidates (no pool_map for a table whose columns are not
    the template's, a damaged map), or gives none: ``run`` would fail on its first suggestion, or
    find nothing to suggest."""
    if c.space.pool is None or not Path(c.space.pool).is_file():
        return []  # no pool, or a missing file (reported with the other files)
    if c.space.pool_map is not None and not Path(c.space.pool_map).is_file():
        return []
    from dm_hpc.campaign.candidates import pool_compositions

    try:
        candidates = pool_compositions(c)
    except (ValueError, OSError) as exc:  # SheetError is a ValueError
        return [_unreadable("space.pool", exc, None if c.space.pool_map is not None else "pool_map")]
    if not candidates:  # the run would find no point to suggest, and end at once
        return [f"space.pool: {Path(c.space.pool).name} has no candidate: no row gives a composition "
                "(composition:<El> [at_frac] columns or a formula)"
                + ("" if c.space.pool_map is not None else "; name a pool_map if its columns are not the template's")]
    return []


def _store_problems(c: CampaignSpec) -> list[str]:
    """A store path that holds something other than a store (a file, a folder of other files): the
    run would fail at its first write, after the campaign has started. A missing or empty folder
    is fine: the first run creates the store. Read from the store's own files, without opening it
    (validate stays light; a damaged store is ``store check``'s to judge)."""
    from dm_hpc.data import layout

    problem = layout.store_folder_problem(Path(c.store))
    return [f"store: {problem}"] if problem else []


def _site_file(c: CampaignSpec) -> Path:
    return profile_path(c.runner.site or "local")


def _unreadable(field: str, exc: Exception, missing_map: str | None) -> str:
    """One line for a table that cannot be read (a ``SheetError`` lists its problems on lines of
    their own); ``missing_map``: the map field left out, named as the likely fix."""
    lines = [ln.strip().rstrip(":") for ln in str(exc).splitlines() if ln.strip()]
    lines = [ln if len(ln) <= 240 else ln[:237] + "..." for ln in lines]  # a wide table's list of unknown columns
    hint = f" (no {missing_map} given: name a column map for this table)" if missing_map else ""
    return (f"{field}: " + "; ".join(lines[:4]) + (f"; ... ({len(lines) - 4} more)" if len(lines) > 4 else "")
            + hint)


def emulation_problems(c: CampaignSpec) -> list[str]:
    """An emulated lab whose table cannot be read, or has no value of a property the lab is to
    measure: the campaign would spend its lab budget on sheets the emulation cannot answer, and then
    have no measured records to learn from or report. The table is read once per process through
    the same cache as a table source (a campaign often names one file for both)."""
    out = []
    for f in c.fidelities:
        if f.emulate_from is None or not Path(f.emulate_from).is_file():
            continue  # a missing file is reported with the other files
        if f.emulate_map is not None and not Path(f.emulate_map).is_file():
            continue
        from dm_hpc.campaign.dataset import table_frame  # pandas: only for a campaign that emulates its lab
        from dm_hpc.campaign.labsheet import lab_properties
        from dm_hpc.data import property_names

        try:
            frame = table_frame(Path(f.emulate_from), f.emulate_map)
        except (ValueError, OSError) as exc:  # SheetError and a damaged column map are ValueErrors
            out.append(_unreadable(f"fidelities.{f.name}.emulate_from", exc,
                                   None if f.emulate_map is not None else "emulate_map"))
            continue
        # as the emulated lab answers: with the table's measured rows, or all rows when none is measured
        measured = frame[frame["source"] == "experimental"] if (frame.get("source") == "experimental").any() else frame
        names = set(property_names())
        has = sorted(p for p in measured.columns if p in names and measured[p].notna().any())
        for prop in lab_properties(c):
            if prop not in has:
                what = "another objective" if _role(c, prop) == "objective" else "another constraint"
                out.append(f"fidelities.{f.name}.emulate_from: {f.emulate_from} holds no {prop} ({_role(c, prop)}; "
                           f"its measurements: {', '.join(has) or 'none'}): the "
                           f"emulated lab could not measure it; map a column to {prop} in emulate_map or choose {what}")
    return out


def _resource_problems(c: CampaignSpec) -> list[str]:
    """Cores, walltime and memory of each calculation against what runs it: this machine's CPUs
    (local runner), or the partition's limits where ``scontrol`` can tell (a job beyond them
    would pend forever)."""
    import os

    from dm_hpc.runners import TaskSpec
    from dm_hpc.runners import limits as partition_limits
    from dm_hpc.runners.sbatch import resolve
    from dm_hpc.runners.site import SiteProfile, SiteProfileError

    if c.runner.kind == RunnerKind.local:
        cpus = os.cpu_count() or 1
        return [f"fidelities.{f.name}.cores: {f.cores} > the {cpus} CPUs of this machine (runner: local)"
                for f in c.calculations if f.cores > cpus]
    if c.runner.site is not None and not _site_file(c).is_file():
        return []  # a missing site profile is reported once, with the files
    try:
        site = SiteProfile.load(c.runner.site or "local")
    except SiteProfileError as exc:
        return [f"runner.site: {exc}"]
    out = [f"runner.site ({site.name}): {why}" for why in
           partition_limits.unknown_names(site.partition, site.account, site.qos)]
    limits = partition_limits.read(site.partition)
    if limits is None:
        return out
    for f in c.calculations:
        shape = resolve(site, TaskSpec(task_id="preflight", argv=["true"], workdir=Path("."), cores=f.cores,
                                       walltime_s=int(f.walltime), campaign=c.name, method=f.method or ""))
        out += [f"fidelities.{f.name}: {why}" for why in partition_limits.exceeded(
            limits, cores=shape.cores, walltime_s=shape.walltime_s, memory_mb=shape.memory_mb)]
    return out


def input_problems(c: CampaignSpec, files: Sequence[tuple[str, Any]] = (), sources: bool = True) -> list[str]:
    """The files a command that only reads the campaign needs (``report``, ``suggest``, ``design
    --campaign``, ``transfer``): the pool and the transfer sources, each there and readable,
    ``files`` (field, path) there, and a store path that holds a store or nothing yet (a file
    there would read as a store without records). What only a run needs (cores of this machine, a site profile, a fidelity
    for each process parameter) is not asked: a campaign that ran elsewhere, or before a check was
    added, is still read. ``sources`` false: the transfer sources are not asked (``report`` leaves
    out one it cannot read, and says so: ``report.readable_sources``)."""
    out = []
    for field, path in [("space.pool", c.space.pool), ("space.pool_map", c.space.pool_map), *files]:
        if path is not None and not Path(path).is_file():
            out.append(f"{field}: no such file: {path}")
    return out + _store_problems(c) + _pool_problems(c) + (transfer_problems(c) if sources else [])


def check_inputs(c: CampaignSpec, origin: str, sources: bool = True) -> None:
    """Raise ``CampaignError`` listing every ``input_problems`` (a missing file named, not a traceback)."""
    found = input_problems(c, sources=sources)
    if found:
        raise CampaignError(f"{origin}: campaign cannot be read:\n" + "\n".join(f"  {p}" for p in found))


def check(c: CampaignSpec, origin: str, check_codes: bool = False) -> None:
    """Raise ``CampaignError`` listing every problem (nothing is spent on a campaign that fails)."""
    found = problems(c, check_codes=check_codes)
    if found:
        raise CampaignError(f"{origin}: campaign cannot run:\n" + "\n".join(f"  {p}" for p in found))
