"""hourglass: look into a study's files, compare two networks, start a new study.

`hourglass inspect|measures|new-study|compare ...` are for people. The
workflow stages (`python -m hourglass <stage> ...`) are what Snakemake's
rules run: each takes its settings as one JSON argument, exactly the
`params` of its rule, so that what Snakemake tracks is what the stage uses.
"""

import argparse
import json
import os
import sys
from pathlib import Path

# OpenMP threads that wait for work spin on their core by default. Beside any
# other busy process (a second job, a laptop's browser) a spinning thread
# holds a core the work needs, and each of the many parallel kernels waits a
# time slice for it: all-pairs Procrustes on 2 cores beside one busy process
# took 2.8x as long as alone, 1.2x with waiting threads asleep. Set here,
# before anything imports torch (libgomp reads it once); a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def stage_data(args):
    from hourglass.data import prepare

    s = args.settings
    prepare(s["dataset"], args.root, args.download == "True", s["val_fraction"], s["train_size"],
            s["probe_size"], s["split_seed"], args.out, classes=s["classes"], first=s["first"],
            resize=s.get("resize"), test_size=s.get("test_size"), pad=s.get("pad"),
            binarise=s.get("binarise"))


def stage_config(args):
    from hourglass.config import write_effective_config

    write_effective_config(args.settings, args.out)


def stage_train(args):
    from hourglass.train import train

    train(args.data, args.settings, args.seed, args.out_dir, threads=args.threads,
          on_divergence=args.on_divergence)


def stage_train_stacked(args):
    import torch

    from hourglass.stacked import train_stacked

    try:
        train_stacked(args.data, args.settings, args.seeds, args.variant_dir,
                      threads=args.threads, on_divergence=args.on_divergence)
    except torch.OutOfMemoryError as error:  # the device's memory: N seeds' activations at once
        raise ValueError(
            f"the stack of {len(args.seeds)} seeds does not fit in the device's memory "
            f"({str(error).splitlines()[0]}); train fewer seeds, a smaller batch_size, or set "
            "training.stack_seeds: false for this variant (a rerun on a larger device resumes "
            "after the last finished epoch)") from None


def stage_activations(args):
    from hourglass.activations import record
    from hourglass.checks import check_checkpoints

    check_checkpoints(args.checkpoints, args.data)  # all of them, before recording any
    for checkpoint, out in zip(args.checkpoints, args.out):
        record(checkpoint, args.data, out, threads=args.threads,
               record_from=args.settings.get("record_from", "sampled"))


def stage_analysis(args):
    from hourglass.analyses.registry import ANALYSES, run_analysis

    analysis = ANALYSES[args.name]
    if len(args.out) != len(analysis.outputs):
        raise ValueError(f"analysis {args.name!r} writes {', '.join(map(analysis.file, analysis.outputs))}: "
                         f"give one --out path for each, in that order (got {len(args.out)})")
    study = analysis.scope == "study"  # of every variant's files: of a study of none, none
    inputs = {"activations": args.activations, "metrics": args.metrics,
              "checkpoints": args.checkpoints, "untrained": args.untrained,
              "data": args.data if study else (args.data[0] if args.data else None),
              "ood": args.ood[0] if args.ood else None}
    missing = [read for read in analysis.reads if not inputs[read]]
    if missing and not study:
        raise ValueError(f"analysis {args.name!r} reads {', '.join(analysis.reads)}: give "
                         + ", ".join(f"--{read}" for read in missing))
    run_analysis(args.name, inputs, args.settings, dict(zip(analysis.outputs, args.out)),
                 args.threads)


def stage_measure(args):
    from hourglass.analyses.comparisons import run

    run(args.activations, args.measure, args.settings, args.out_h5, args.out_csv, args.threads)


def stage_findings(args):
    from hourglass.findings import run

    run(args.reads, args.tables, args.settings, args.out)


def stage_gather(args):
    from hourglass.io import concat_outputs

    concat_outputs(args.files, args.out)


def stage_figure(args):
    from hourglass.plots import draw

    draw(args.kind, args.inputs, args.out, args.settings)


def user_inspect(args):
    from hourglass.files import describe_file, format_description

    for i, path in enumerate(args.files):
        d = describe_file(path)
        print(json.dumps(d, indent=2) if args.json else ("\n" if i else "") + format_description(d))


def user_measures(args):
    from hourglass.analyses.layerwise import format_measures

    print(format_measures())


def user_new_study(args):
    from hourglass.studies import new_study

    path = new_study(args.name, args.out, args.force)
    print(f"wrote {path}; edit it, then run: snakemake --cores all --configfile {path}")


def user_check(args):
    from hourglass.config import check_files
    from hourglass.studies import find_schema

    check_files(args.files, find_schema())
    print(f"{' '.join(map(str, args.files))}: config OK")


def user_compare(args):
    from hourglass.analyses.layerwise import compare_files, format_comparison, read_options
    from hourglass.io import check_out, write_table

    if args.out:
        check_out(args.out, [args.a, args.b], args.force)  # before computing: nothing is lost yet
    table = compare_files(args.a, args.b, args.measure, read_options(args.option), args.layer,
                          args.matrix, log=lambda line: print(line, file=sys.stderr))
    print(f"{args.measure} between\n  a: {args.a}\n  b: {args.b}")
    print(format_comparison(table, args.measure, args.matrix))
    if args.out:
        write_table(table, args.out)
        print(f"wrote {args.out}")


Formatter = argparse.RawDescriptionHelpFormatter


def command_list(title, sub, names):
    """A section of `hourglass --help`: one line per command, its help."""
    helps = {action.dest: action.help for action in sub._choices_actions}
    return f"{title}:\n" + "\n".join(f"  {name:<13} {helps[name]}" for name in names)


def add_user_commands(sub):
    def command(name, func, help, description, epilog=None):
        c = sub.add_parser(name, help=help, description=description, epilog=epilog,
                           formatter_class=Formatter)
        c.set_defaults(func=func)
        return c

    c = command("inspect", user_inspect, "what a file of the workflow holds", """\
Say what a file holds, for every kind of file the workflow writes:
  activations  {variant}/seed{s}/activations/*.h5: layers (in order) and shapes,
               seed, variant, checkpoint, trained epochs, model settings, version
  checkpoint   {variant}/seed{s}/checkpoints/*.pt: settings, seed, epoch,
               parameter shapes, version (read without running pickled code)
  similarity   similarity/{measure}.h5: the measure, its options, the number of
  matrix       representations, and the values of each label column
  dataset      data/{dataset}-{hash}.h5: splits, image shapes, classes, probe set
and a killed training run's {variant}/seed{s}/.resume/state.pt (seeds stacked:
{variant}/.resume/stacked.pt, each seed's epoch and whether it is done). The kind is
read from the file's content, not its name; anything else is an error.""",
                epilog="example: hourglass inspect results/digits_consistency/latent4/seed0/activations/final.h5")
    c.add_argument("files", nargs="+", type=Path, metavar="FILE", help="one or more files")
    c.add_argument("--json", action="store_true", help="print each description as JSON")

    command("measures", user_measures, "the similarity measures and their options", """\
List the similarity measures that `similarity.measures` in a study's config
and `hourglass compare --measure` take, with their options and defaults.""")

    c = command("check", user_check, "check a study's config files before running them", """\
Parse a study's config files, merge them in order as `snakemake --configfile
A.yaml B.yaml` does, and check the result against the workflow's schema and
the measures' options. Unlike Snakemake's, its message for a file that does
not parse names the file, the line and the column.""",
                epilog="example: hourglass check configs/fashion_mnist_consistency.yaml "
                       "configs/fashion_mnist_consistency_20k.yaml")
    c.add_argument("files", nargs="+", type=Path, metavar="FILE", help="config files, in order")

    c = command("new-study", user_new_study, "write a commented config for a new study", """\
Write the config of a new study NAME, every key explained in a comment, to
configs/NAME.yaml of the checkout (or --out PATH). It starts as the default
study (small, digits, minutes on a laptop) and is checked against the
workflow's schema (workflow/schemas/config.schema.yaml, found beside the
package's src/ folder or in the current folder). An existing file is
replaced only with --force.""", epilog="""\
example: hourglass new-study latent_sweep
         snakemake --cores all --configfile configs/latent_sweep.yaml""")
    c.add_argument("name", metavar="NAME",
                   help="the study's name, also its folder under results/ (letters, digits, _ . -)")
    c.add_argument("--out", type=Path, metavar="PATH", help="where to write it (default: configs/NAME.yaml)")
    c.add_argument("--force", action="store_true", help="replace the file if it exists")

    c = command("compare", user_compare, "a measure between two activation files, layer by layer", """\
Compare two activation files (say, two seeds, or a network before and after
training) with any measure of `hourglass measures`: each layer of A against
the same layer of B (--layer picks some), or every layer of A against every
layer of B (--matrix). Both files must hold the same probe stimuli. A dead
layer (every probe image alike) has no similarity: it shows nan.""", epilog="""\
examples:
  hourglass compare latent4/seed0/activations/final.h5 latent4/seed1/activations/final.h5
  hourglass compare A.h5 B.h5 --measure rsa --option compare=spearman --layer bottleneck1
  hourglass compare A.h5 B.h5 --matrix --out cka.csv""")
    c.add_argument("a", type=Path, metavar="A.h5", help="an activations file (the rows of --matrix)")
    c.add_argument("b", type=Path, metavar="B.h5", help="another (the columns of --matrix)")
    c.add_argument("--measure", default="linear_cka", help="a measure of `hourglass measures` (default: linear_cka)")
    c.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="an option of the measure, e.g. debiased=true (repeatable)")
    c.add_argument("--layer", action="append", metavar="NAME",
                   help="compare only this layer (repeatable; default: every layer both files have)")
    c.add_argument("--matrix", action="store_true",
                   help="every layer of A against every layer of B, as a layer x layer matrix")
    c.add_argument("--out", type=Path, metavar="CSV",
                   help="also write the table (with --matrix: one row per pair of layers) as CSV; "
                        "never over A.h5 or B.h5")
    c.add_argument("--force", action="store_true", help="replace the --out file if it exists")


def add_stage_commands(sub):
    def stage(name, func, help):
        s = sub.add_parser(name, help=help, description=f"Workflow stage: {help} (run by the rules).")
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
    s = stage("config", stage_config, "write the study's effective config as YAML")
    s.add_argument("--out", required=True, type=Path)
    s = stage("train", stage_train, "train one variant under one seed")
    s.add_argument("--data", required=True, type=Path)
    s.add_argument("--seed", required=True, type=int)
    s.add_argument("--out-dir", required=True, type=Path)
    s.add_argument("--on-divergence", choices=["fail", "exclude"], default="fail",
                   help="stop with an error, or record the seed as diverged and go on")
    s = stage("train-stacked", stage_train_stacked,
              "train every seed of one variant together (training.stack_seeds)")
    s.add_argument("--data", required=True, type=Path)
    s.add_argument("--seeds", nargs="+", required=True, type=int)
    s.add_argument("--variant-dir", required=True, type=Path,
                   help="each seed's files go to {variant-dir}/seed{s}, as `train` writes them")
    s.add_argument("--on-divergence", choices=["fail", "exclude"], default="fail",
                   help="stop with an error, or record the seed as diverged and go on")
    s = stage("activations", stage_activations, "record every layer on the probe set")
    s.add_argument("--data", required=True, type=Path)
    s.add_argument("--checkpoints", nargs="+", required=True, type=Path)
    s.add_argument("--out", nargs="+", required=True, type=Path)
    s = stage("analysis", stage_analysis,
              "one analysis of a variant, or of the study (hourglass.analyses.registry)")
    s.add_argument("name", choices=analysis_names())
    s.add_argument("--activations", nargs="*", default=[], type=Path)
    s.add_argument("--data", nargs="*", default=[], type=Path,
                   help="the variant's data file, for analyses that read it")
    s.add_argument("--metrics", nargs="*", default=[], type=Path,
                   help="every seed's metrics.csv, for analyses that read them")
    s.add_argument("--untrained", nargs="*", default=[], type=Path,
                   help="every seed's checkpoint 0, where the analysis reads them")
    s.add_argument("--checkpoints", nargs="*", default=[], type=Path,
                   help="every seed's final checkpoint, for analyses that read them")
    s.add_argument("--ood", nargs="*", default=[], type=Path,
                   help="the out-of-distribution data file, for analyses that read it")
    s.add_argument("--out", nargs="+", required=True, type=Path,
                   help="one CSV per table of the analysis, in its order")
    s = stage("measure", stage_measure, "one similarity measure between all representations")
    s.add_argument("measure")
    s.add_argument("--activations", nargs="+", required=True, type=Path)
    s.add_argument("--out-h5", required=True, type=Path)
    s.add_argument("--out-csv", required=True, type=Path)
    s = stage("findings", stage_findings, "check the study's claims on its tables")
    s.add_argument("--tables", nargs="*", default=[], type=Path)
    s.add_argument("--reads", type=json.loads, required=True,
                   help="the [analysis, table] each of --tables is, as JSON")
    s.add_argument("--out", required=True, type=Path)
    s = stage("gather", stage_gather, "concatenate the variants' tables or image files")
    s.add_argument("--files", nargs="+", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path)
    s = stage("figure", stage_figure, "draw one figure")
    s.add_argument("kind")
    s.add_argument("--inputs", nargs="+", required=True, type=Path)
    s.add_argument("--out", nargs="+", required=True, type=Path)


def analysis_names():
    from hourglass.analyses.registry import ANALYSES

    return list(ANALYSES)


def parser():
    from hourglass import __version__

    p = argparse.ArgumentParser(prog="hourglass", description=__doc__.split("\n\n")[0],
                                usage="hourglass [-h] [--version] COMMAND ...",
                                formatter_class=Formatter)
    p.add_argument("--version", action="version", version=f"hourglass {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", prog="hourglass",
                           help=argparse.SUPPRESS)
    add_user_commands(sub)
    users = list(sub.choices)
    add_stage_commands(sub)
    stages = [name for name in sub.choices if name not in users]
    p.epilog = "\n\n".join([
        command_list("commands", sub, users),
        command_list("workflow stages (what the Snakefile's rules run; settings as the rule's "
                     "JSON params)", sub, stages),
        "`hourglass COMMAND --help` describes each one."])
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if hasattr(args, "threads"):  # a workflow stage: its rule holds `threads` cores
        # torch's pool is set by each stage; the BLAS and OpenMP pools of NumPy,
        # SciPy and scikit-learn would otherwise start a thread per core of the
        # machine (a cluster node's 64 for a 1-core job). Read when those
        # libraries load, which is after this; a user's own setting wins.
        for pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(pool, str(args.threads))
    try:
        args.func(args)
    except (ValueError, OSError, FloatingPointError) as error:
        print(f"hourglass {args.command}: error: {error}", file=sys.stderr)
        sys.exit(1)
