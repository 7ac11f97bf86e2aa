"""`python -m hourglass <stage> ...`: the commands the workflow's rules run.

Each stage takes its settings as one JSON argument, exactly the `params` of
its rule, so that what Snakemake tracks is what the stage uses.
"""

import argparse
import json
import sys
from pathlib import Path


def stage_data(args):
    from hourglass.data import prepare

    s = args.settings
    prepare(s["dataset"], args.root, args.download == "True", s["val_fraction"], s["train_size"],
            s["probe_size"], s["split_seed"], args.out)


def stage_train(args):
    from hourglass.train import train

    train(args.data, args.settings, args.seed, args.out_dir, threads=args.threads,
          on_divergence=args.on_divergence)


def stage_activations(args):
    from hourglass.activations import record

    for checkpoint, out in zip(args.checkpoints, args.out):
        record(checkpoint, args.data, out, threads=args.threads)


def stage_consistency(args):
    from hourglass.analyses.consistency import run

    run(args.activations, args.settings, args.out_consistency, args.out_mds, args.threads)


def stage_measure(args):
    from hourglass.analyses.comparisons import run

    run(args.activations, args.measure, args.settings, args.out_h5, args.out_csv, args.threads)


def stage_gather(args):
    from hourglass.io import concat_tables

    concat_tables(args.tables, args.out)


def stage_figure(args):
    from hourglass.plots import draw

    draw(args.kind, args.inputs, args.out, args.settings)


def parser():
    p = argparse.ArgumentParser(prog="hourglass", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="stage", required=True)

    def stage(name, func, help):
        s = sub.add_parser(name, help=help)
        s.set_defaults(func=func)
        s.add_argument("--settings", type=json.loads, default={},
                       help="the stage's settings as JSON (its rule's params)")
        s.add_argument("--threads", type=int, default=1)
        return s

    s = stage("data", stage_data, "prepare a dataset file: splits and probe set")
    s.add_argument("--root", required=True, help="folder the dataset is read from")
    s.add_argument("--download", choices=["True", "False"], default="False",
                   help="download it when missing (needs the network)")
    s.add_argument("--out", required=True, type=Path)
    s = stage("train", stage_train, "train one variant under one seed")
    s.add_argument("--data", required=True, type=Path)
    s.add_argument("--seed", required=True, type=int)
    s.add_argument("--out-dir", required=True, type=Path)
    s.add_argument("--on-divergence", choices=["fail", "exclude"], default="fail",
                   help="stop with an error, or record the seed as diverged and go on")
    s = stage("activations", stage_activations, "record every layer on the probe set")
    s.add_argument("--data", required=True, type=Path)
    s.add_argument("--checkpoints", nargs="+", required=True, type=Path)
    s.add_argument("--out", nargs="+", required=True, type=Path)
    s = stage("consistency", stage_consistency, "RC per layer and MDS for one variant")
    s.add_argument("--activations", nargs="+", required=True, type=Path)
    s.add_argument("--out-consistency", required=True, type=Path)
    s.add_argument("--out-mds", required=True, type=Path)
    s = stage("measure", stage_measure, "one similarity measure between all representations")
    s.add_argument("measure")
    s.add_argument("--activations", nargs="+", required=True, type=Path)
    s.add_argument("--out-h5", required=True, type=Path)
    s.add_argument("--out-csv", required=True, type=Path)
    s = stage("gather", stage_gather, "concatenate tables")
    s.add_argument("--tables", nargs="+", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path)
    s = stage("figure", stage_figure, "draw one figure")
    s.add_argument("kind")
    s.add_argument("--inputs", nargs="+", required=True, type=Path)
    s.add_argument("--out", nargs="+", required=True, type=Path)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError, FloatingPointError) as error:
        print(f"hourglass {args.stage}: error: {error}", file=sys.stderr)
        sys.exit(1)
