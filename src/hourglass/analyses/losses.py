"""Training and test losses of a grid of variants (Manakov et al.'s
bottleneck area x compression): per run the minimum test error and its
epoch and the first epoch whose training loss falls below a threshold, the
curves, and rank-sum tests between the levels of each setting of the grid.

The grid is two settings of the variants' models or data (`grid`, e.g. area
and compression, or area and train_size), whose values `variants` gives. A run that never trains below
the threshold has no such epoch: NaN, and `undefined` says so.
"""

import itertools

import numpy as np
import pandas as pd

from hourglass.io import read_table, write_table

CURVE_COLUMNS = ["train_loss", "test_loss"]


def run_rows(metrics, threshold):
    """The `runs` entries of one run's metrics (rows of epochs 0, 1, ...): the
    trained epochs' minimum test loss and its epoch, the first epoch whose
    training loss is below `threshold`, and why that is undefined."""
    trained = metrics[metrics["epoch"] >= 1]
    losses = trained[["train_loss", "test_loss"]].to_numpy(dtype=float)
    if trained.empty or not np.isfinite(losses).all():
        why = ("no trained epoch" if trained.empty else "diverged at epoch "
               f"{int(trained['epoch'][~np.isfinite(losses).all(axis=1)].iloc[0])}")
        return dict(min_test_loss=np.nan, min_test_epoch=np.nan, first_below=np.nan,
                    epochs=len(trained), undefined=why)
    best = trained["test_loss"].idxmin()
    below = trained[trained["train_loss"] < threshold]
    return dict(min_test_loss=trained.loc[best, "test_loss"],
                min_test_epoch=int(trained.loc[best, "epoch"]),
                first_below=int(below["epoch"].iloc[0]) if len(below) else np.nan,
                epochs=len(trained),
                undefined="" if len(below) else
                f"training loss never below {threshold:g} in {len(trained)} epochs")


def level_tests(runs, key, measure):
    """Two-sided Wilcoxon rank-sum (Mann-Whitney U, scipy.stats) tests of
    `measure` between every two levels of grid setting `key`, pooled over the
    other settings; runs where `measure` is NaN are left out and counted."""
    from scipy.stats import mannwhitneyu

    levels = list(dict.fromkeys(runs[key]))
    rows = []
    for a, b in itertools.combinations(levels, 2):
        x, y = (runs.loc[runs[key] == level, measure] for level in (a, b))
        left_out = int(x.isna().sum() + y.isna().sum())
        x, y = x.dropna().to_numpy(), y.dropna().to_numpy()
        row = dict(measure=measure, setting=key, level_a=a, level_b=b, n_a=len(x), n_b=len(y),
                   median_a=np.median(x) if len(x) else np.nan,
                   median_b=np.median(y) if len(y) else np.nan, statistic=np.nan, p_value=np.nan,
                   undefined=f"{left_out} runs undefined, left out" if left_out else "")
        if len(x) and len(y):
            test = mannwhitneyu(x, y, alternative="two-sided")
            row.update(statistic=test.statistic, p_value=test.pvalue)
        else:
            row["undefined"] = "no defined runs at " + " or ".join(
                str(level) for level, v in ((a, x), (b, y)) if not len(v))
        rows.append(row)
    return rows


def run(metrics, settings, out, threads=1):
    """Tables `runs` (per variant and seed), `curves` (per epoch) and `tests`
    (between the levels of each grid setting) of every run's metrics.csv."""
    grid, threshold = settings["grid"], settings["threshold"]
    runs, curves = [], []
    for path in metrics:
        table = read_table(path).astype({"epoch": int})  # no checkpoint labels here
        variant, seed = table["variant"].iloc[0], int(table["seed"].iloc[0])
        own = settings["variants"][variant]
        missing = [key for key in grid if key not in own]
        if missing:
            raise ValueError(f"analyses.losses.grid names {', '.join(missing)}, which variant "
                             f"{variant!r} has not among its model ({own['architecture']}) and "
                             "data settings; name two of them, e.g. [area, compression] for a cae")
        key = dict(variant=variant, seed=seed, **{k: own[k] for k in grid})
        runs.append(dict(**key, **run_rows(table, threshold)))
        curves += [dict(**key, epoch=int(row.epoch), train_loss=row.train_loss,
                        test_loss=row.test_loss) for row in table.itertuples()]
    runs = pd.DataFrame(runs)
    tests = [row for key in grid for measure in ("min_test_loss", "first_below")
             for row in level_tests(runs, key, measure)]
    write_table(runs, out["runs"])
    write_table(pd.DataFrame(curves), out["curves"])
    write_table(pd.DataFrame(tests, columns=["measure", "setting", "level_a", "level_b", "n_a",
                                             "n_b", "median_a", "median_b", "statistic",
                                             "p_value", "undefined"]), out["tests"])
