"""Where t_sampling beats random search and TPE (issue 26): by dimensions and conditions per dimension.

``python -m bench t-sampling-domain`` cuts real tables (``bench.tables``) to sub-spaces of d dimensions with m
conditions each and runs t_sampling (seed 000's staged procedure, its defaults), random, the project's ``optuna_tpe``
and Optuna's TPESampler on each at equal budgets: t_sampling's least budget (``plan.least_trials``; its plan refuses
any smaller one) and twice that, capped at ``CAP``. A sub-space (``SubTable``) takes the d dimensions that move the
table's best configuration most (each varied alone over all its values; ties in key order), each on m evenly spaced
values of its grid (HPOBench's depth has only 3), in the table's key order, which is t_sampling's stage order; the
other dimensions stay at the best configuration's values. d = 1 is left out by default: t_sampling needs two
dimensions (its first stage crosses two). Trials observe one training seed as ``bench.tables`` says; the pick is the
trial with the best observed value (``runner``), its regret the sub-space's best mean minus the pick's mean, so a
sub-space that misses the table's best counts against no one.

Printed and written to ``--out`` as ``summary.md``: per budget and opponent, a d x m grid of t_sampling's wins / ties
/ losses over the tables (median regret over the seeds, compared per table), then the medians; also ``results.csv``
(one row per study, the pick as its table key) and ``domain.png`` (per budget and opponent, a d x m heatmap of the
median over the tables of t_sampling's median regret minus the opponent's, with the wins / ties / losses).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.search import execute, report
from bench.search.runner import Job
from bench.tables import TableTask, _table
from hpo_tune.plots import png, pyplot
from hpo_tune.space import Choice, SearchSpace
from hpo_tune.strategies.factorial.tables import markdown
from hpo_tune.strategies.t_sampling.plan import least_trials

TABLES = ("hpobench/kc1", "hpobench/phoneme", "nasbench201/cifar100")
QUICK_TABLES = ("hpobench/kc1", "nasbench201/cifar100")
SEARCHERS = ("optuna_tpe", "TPESampler", "t_sampling", "random")  # the slowest first
OPPONENTS = ("random", "optuna_tpe", "TPESampler")
DIMS = (2, 3, 4, 5, 6)  # each table takes those up to its own number of dimensions
CONDITIONS = (2, 3, 4, 5)
QUICK_DIMS, QUICK_CONDITIONS = (2, 3), (2, 3)
CAP = 200  # trials, for the doubled budget
POINTS = {"hpobench": 100.0, "nasbench201": 1.0}  # regret to accuracy points: HPOBench is a fraction, NAS percent
SATURATE = 1.0  # accuracy points at which the heatmaps' colours saturate
KINDS = ("least", "2x least")
OUT = Path(__file__).resolve().parents[1] / "results" / "t-sampling-domain"
QUICK_OUT = OUT.with_name("t-sampling-domain-quick")  # --quick checks that the bench runs; git ignores it
NAME = re.compile(r"(?P<table>.+)@d(?P<dims>\d+)m(?P<conditions>\d+)")


def spaced(values: tuple, conditions: int) -> tuple:
    """``conditions`` evenly spaced values of a grid, its ends included (all of them when it has fewer)."""
    picks = np.unique(np.round(np.linspace(0, len(values) - 1, conditions)).astype(int))
    return tuple(values[i] for i in picks)


def by_importance(table: str) -> list[str]:
    """The table's dimensions, the one whose values move its best configuration's mean most first (ties in key
    order): the sub-spaces search what matters, rather than what happens to come first."""
    task = TableTask(table)
    _, means, _ = _table(task.path)
    best = max(means, key=means.__getitem__)
    spread = {}
    for i, (name, values) in enumerate(task.dimensions.items()):
        moved = [means[best[:i] + str(j) + best[i + 1:]] for j in range(len(values))]
        spread[name] = max(moved) - min(moved)
    return sorted(task.dimensions, key=lambda name: -spread[name])


class SubTable(TableTask):
    """A table cut to ``dims`` dimensions of ``conditions`` values each, the others held at its best configuration;
    regret is against the best mean within the sub-space."""

    def __init__(self, table: str, dims: int, conditions: int):
        super().__init__(table)
        _, means, _ = _table(self.path)
        best = max(means, key=means.__getitem__)
        chosen = set(by_importance(table)[:dims])
        if len(chosen) < dims:
            raise ValueError(f"{table} has only {len(chosen)} dimensions, not {dims}")
        self.held = {name: values[int(best[i])] for i, (name, values) in enumerate(self.dimensions.items())}
        self.values = {name: spaced(values, conditions) for name, values in self.dimensions.items() if name in chosen}
        self.name, self.table, self.dims, self.conditions = cell_name(table, dims, conditions), table, dims, conditions
        self.best = max(means[self.key(dict(zip(self.values, combination)))]
                        for combination in itertools.product(*self.values.values()))

    def space(self) -> SearchSpace:
        return SearchSpace({name: Choice(values) for name, values in self.values.items()})

    def key(self, params: dict) -> str:
        return super().key({**self.held, **params})

    @property
    def minimum(self) -> float:
        """The sub-space's best mean as a loss."""
        return self.direction.loss(self.best)

    def least(self) -> int:
        """t_sampling's least budget on this sub-space (its default order: the space's)."""
        return least_trials([len(values) for values in self.values.values()])

    def budgets(self) -> tuple[int, int]:
        """The least budget and twice it, capped at ``CAP`` (never below the least)."""
        least = self.least()
        return least, max(least, min(2 * least, CAP))


def cell_name(table: str, dims: int, conditions: int) -> str:
    return f"{table}@d{dims}m{conditions}"


@functools.cache
def sub_table(name: str) -> SubTable:
    """The problem named by ``cell_name`` (cached: a job builds it again for every study)."""
    match = NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"not a sub-table name: {name!r}")
    return SubTable(match["table"], int(match["dims"]), int(match["conditions"]))


def jobs_for(tables: list[str], dims: list[int], conditions: list[int], seeds: int) -> list[Job]:
    """Every (sub-table, searcher, seed), at both budgets; a table takes the dims up to its own count."""
    cells = [sub_table(cell_name(t, d, m)) for t in tables for d in dims for m in conditions
             if d <= len(TableTask(t).dimensions)]
    return [Job(cell.name, searcher, seed, cell.budgets())
            for searcher in SEARCHERS for cell in cells for seed in range(seeds)]


def frame(rows: list[dict]) -> pd.DataFrame:
    """The studies' rows with their cell, budget kind, regret (native units: a fraction on HPOBench) and the pick as
    its table key, without the strategies' notes (15,000 studies stay a small file). Regret is rounded to 1e-9:
    configurations of equal mean differ by float noise (1e-14), which must not decide a win."""
    data = pd.DataFrame(rows)
    cells = data.function.map(sub_table)
    data["table"], data["dims"] = cells.map(lambda c: c.table), cells.map(lambda c: c.dims)
    data["conditions"], data["least"] = cells.map(lambda c: c.conditions), cells.map(lambda c: c.least())
    data["kind"] = np.where(data.budget == data.least, KINDS[0], KINDS[1])
    data["regret"] = (data.picked_loss - cells.map(lambda c: c.minimum)).round(9)
    data["run_seconds"] = data.run_seconds.round(4)
    data["key"] = [cell.key(json.loads(picked)) if status == "ok" else ""
                   for cell, picked, status in zip(cells, data.picked, data.status)]
    order = ["table", "dims", "conditions", "least", "kind", "budget", "searcher", "seed", "status", "regret",
             "trials", "run_seconds", "key"]
    return data[order].sort_values(["table", "dims", "conditions", "budget", "searcher", "seed"], ignore_index=True)


def medians(data: pd.DataFrame) -> pd.DataFrame:
    """Median regret over seeds in accuracy points, per (table, dims, conditions, kind) and searcher."""
    ok = data[data.status == "ok"].assign(
        points=lambda d: d.regret * d.table.str.partition("/")[0].map(POINTS))
    return ok.pivot_table(index=["table", "dims", "conditions", "kind"], columns="searcher", values="points",
                          aggfunc="median").reindex(columns=list(SEARCHERS))


def records(table: pd.DataFrame, kind: str, opponent: str) -> pd.DataFrame:
    """A dims x conditions grid of t_sampling's 'W / T / L' against ``opponent`` over the tables (``report.record``);
    '—' where t_sampling ran nowhere."""
    at = table.xs(kind, level="kind")
    grid = {}
    for (dims, conditions), cell in at.groupby(level=["dims", "conditions"]):
        versus = cell.droplevel(["dims", "conditions"]).T
        accepted = versus.loc["t_sampling"].notna().any()
        grid.setdefault(dims, {})[f"m = {conditions}"] = report.record(versus, opponent)["t_sampling"] if accepted \
            else "—"
    return pd.DataFrame(grid).T.rename_axis("d").reset_index()


def summary(data: pd.DataFrame, seconds: float) -> str:
    """Markdown: the settings, the records against each opponent at each budget, then the median regrets."""
    table = medians(data)
    tables = ", ".join(data.table.unique())
    parts = [f"t_sampling's domain: {tables}; {data.seed.nunique()} seeds; {len(data)} studies in {seconds:.0f} s. "
             f"Budgets per cell: t_sampling's least (2 (m^2 + (d - 2) m)) and twice that (cap {CAP}). A cell counts "
             "the tables with d dimensions or more (HPOBench has 5, NAS-Bench-201 6)."]
    for kind in KINDS:
        for opponent in OPPONENTS:
            parts.append(f"### t_sampling against {opponent}, {kind} budget: wins / ties / losses over the tables "
                         f"(median regret)\n\n" + markdown(records(table, kind, opponent)))
    wide = table.unstack("kind")
    cells = pd.DataFrame({searcher: [" / ".join(f"{wide.loc[i, (searcher, k)]:.3g}" for k in KINDS) for i in wide.index]
                          for searcher in SEARCHERS}, index=wide.index)
    least = data.groupby(["table", "dims", "conditions"]).least.first()
    cells.insert(0, "budgets", [f"{least[i]} / {max(least[i], min(2 * least[i], CAP))}" for i in cells.index])
    parts.append("### Median regret, least / 2x budget (accuracy points; nan: not accepted)\n\n"
                 + markdown(cells.reset_index()))
    return "\n\n".join(parts) + "\n"


def plot(data: pd.DataFrame) -> bytes:
    """Per budget (rows) and opponent (columns): a d x m heatmap of the median over the tables of t_sampling's median
    regret minus the opponent's, in accuracy points (blue: t_sampling better; saturating at ``SATURATE``), each cell
    with its wins / ties / losses."""
    plt = pyplot()
    table = medians(data)
    fig, axes = plt.subplots(len(KINDS), len(OPPONENTS), figsize=(4.2 * len(OPPONENTS), 3.6 * len(KINDS)),
                             squeeze=False)
    for row, kind in zip(axes, KINDS):
        at = table.xs(kind, level="kind")
        for ax, opponent in zip(row, OPPONENTS):
            gap = (at.t_sampling - at[opponent]).groupby(level=["dims", "conditions"]).median().unstack("conditions")
            grid = records(table, kind, opponent).set_index("d")
            ax.imshow(gap.to_numpy(), cmap="RdBu_r", vmin=-SATURATE, vmax=SATURATE, origin="lower", aspect="auto")
            for (i, j), value in np.ndenumerate(gap.to_numpy()):
                ax.text(j, i, f"{value:+.2f}\n{grid.loc[gap.index[i], f'm = {gap.columns[j]}']}", ha="center",
                        va="center", fontsize=7)
            ax.set_xticks(range(gap.shape[1]), gap.columns)
            ax.set_yticks(range(gap.shape[0]), gap.index)
            ax.set_xlabel("m (conditions per dimension)", fontsize=8)
            ax.set_ylabel("d (dimensions)", fontsize=8)
            ax.set_title(f"t_sampling - {opponent}, {kind} budget", fontsize=9)
    return png(fig)


def run(tables: list[str], dims: list[int], conditions: list[int], seeds: int, workers: int = 1,
        out: Path = OUT) -> str:
    """Run the bench, print and write its summary, CSV and plot; returns the summary (markdown)."""
    jobs = jobs_for(tables, dims, conditions, seeds)
    print(f"\nt_sampling's domain: {len(jobs)} jobs ({len(tables)} tables, d in {dims}, m in {conditions}, "
          f"{len(SEARCHERS)} searchers x {seeds} seeds, 2 budgets each)", flush=True)
    start = time.perf_counter()
    data = frame(execute(jobs, workers, sub_table))
    text = summary(data, time.perf_counter() - start)
    print(text, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    data.to_csv(out / "results.csv", index=False)
    (out / "summary.md").write_text(text)
    (out / "domain.png").write_bytes(plot(data))
    print(f"written: {', '.join(str(out / f) for f in ('results.csv', 'summary.md', 'domain.png'))}")
    return text
