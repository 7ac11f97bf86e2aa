"""Training every seed of a variant in one job (training.stack_seeds).

The seeds' weights are stacked along a new first dimension and trained
together: each step is one forward and backward pass of the whole stack
(torch.func.vmap over functional_call) and one Adam step over the stacked
parameters, in which each seed's slice takes its own step (Adam is
elementwise). On a GPU, where one small autoencoder leaves the device mostly
idle, that is one kernel where there were as many as seeds. Everything else
stays each seed's own, exactly as train() does it: the initial weights, the
minibatch order, the training noise (a denoising objective's corruption,
drawn from the seed's generator before the stacked pass), the evaluation,
early stopping, divergence, the checkpoints and metrics.csv, written to the
same files. A seed whose training ends leaves the stack.

Each seed's gradient is taken inside the vmapped pass (torch.func.grad), as
its own backward pass would take it (autograd through the stacked forward
pass sums the weight gradients in another order), and in fp32 each dense
layer's product of a minibatch starts its sums from the bias as one seed's
does (FusedLinear). On CPU the fc models then train bit for bit as they do
one seed at a time: tests/test_stacked.py holds 3 seeds to it, early
stopping and divergence included, and benchmarks/training.py --stack
compares the checkpoint bytes (10 seeds of the consistency paper's
784-512-...-8 model, 1 epoch of 20,000 Fashion-MNIST images: all 30 the
same). Checked once by hand, not in the tests: 60 epochs of the default
study's model, and a small conv model, the same bytes too; the cae's
instance norms are batched with other sums (gradients equal to rounding,
not to the bit), as are bf16's dense products, which keep vmap's own.
Those seeds drift apart as training amplifies any change of rounding, as
another device or thread count does. So the setting is a training setting
like any other: switching it re-trains. Reruns of stacked training are
byte-identical, and a killed job resumes from the end of its last epoch
({variant}/.resume/stacked.pt, the seeds' checkpoints beside it until all
are published) to the same bytes. With on_divergence fail, one diverging
seed stops the whole job.

Not stackable, and refused by the config check (see unstackable): a VAE,
whose code is drawn inside the model from each seed's own generator, which
one vmapped pass cannot do; a model whose layers share weights (linear's
tied decoder); fp16, whose gradient scaler would skip every seed's step
when one seed's gradients overflow.
"""

import copy
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from hourglass.data import load_split
from hourglass.io import FORMAT_VERSION
from hourglass.losses import Batch
from hourglass.models import architecture, build_model
from hourglass.objectives import objective_loss
from hourglass.progress import bar, log_line
from hourglass.stages import code_hash
from hourglass.train import (DEFAULT_OBJECTIVE, DEFAULT_WEIGHT_DECAY, RESUME_DIR, SPLITS,
                             STACKED_STATE, TRAIN_NOISE, autocast, end_epoch, epoch_batches,
                             fingerprint, first_progress, last_checkpoints, load_progress,
                             noise_stream, pick_device, publish, save, save_checkpoint,
                             seed_everything, split_columns, split_metrics, train)


def unstackable(model, training):
    """Why the seeds of `model` (built) trained with `training` cannot be
    stacked, or None where they can."""
    if "sampled" in model.layer_roles:
        return ("a VAE draws its code inside the model from each seed's own noise "
                "generator, which one vmapped pass of all seeds cannot do")
    if len(list(model.named_parameters(remove_duplicate=False))) > len(list(model.parameters())):
        return ("its layers share weights (a linear model's tied decoder), which the stacked "
                "copy of the model cannot keep shared")
    if training.get("precision") == "fp16":
        return ("fp16's gradient scaler would skip every seed's step whenever one seed's "
                "gradients overflow; use bf16 or fp32")
    return None


class ByRole(nn.Module):
    """`model`'s by_role as its forward: what functional_call runs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.by_role(x)


class FusedLinear(torch.autograd.Function):
    """x Wᵀ + b of a minibatch x (2-D) as one seed's nn.Linear computes it,
    in one addmm whose sums start from the bias; under vmap in one baddbmm
    that does the same for each seed, where vmap's own F.linear adds the bias
    after the product (another rounding from about 256 inputs on). The
    gradients are those of addmm's backward."""

    @staticmethod
    def forward(x, weight, bias):
        return torch.addmm(bias, x, weight.t())

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        wanted = ctx.needs_input_grad
        return (grad.mm(weight) if wanted[0] else None, grad.t().mm(x) if wanted[1] else None,
                grad.sum(0) if wanted[2] else None)

    @staticmethod
    def vmap(info, in_dims, x, weight, bias):
        x, weight, bias = (t.expand(info.batch_size, *t.shape) if dim is None else t.movedim(dim, 0)
                           for t, dim in zip((x, weight, bias), in_dims))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2)), 0


class StackedLinear(nn.Linear):
    """nn.Linear whose product of a minibatch (2-D, with a bias) is FusedLinear's."""

    def forward(self, x):
        if x.dim() == 2 and self.bias is not None:
            return FusedLinear.apply(x, self.weight, self.bias)
        return super().forward(x)


def skeleton_of(model, precision):
    """A weightless copy of `model` (ByRole) that functional_call runs on the
    stacked weights; in fp32 its dense layers StackedLinear, so that each
    seed's sums are those it has alone (autocast would cast inside them)."""
    skeleton = copy.deepcopy(ByRole(model)).to("meta")
    if precision == "fp32":
        for module in skeleton.modules():
            if type(module) is nn.Linear:
                module.__class__ = StackedLinear  # the same parameters, another forward
    return skeleton


@dataclass
class Seed:
    """One seed of the stack: its model (its weights copied out of the stack
    for evaluation and checkpoints), its generators and its progress (as
    train() keeps it)."""

    seed: int
    out_dir: Path
    work: Path  # its checkpoints, until every seed's files are published
    model: nn.Module
    order: torch.Generator
    noise: torch.Generator
    progress: dict = None


def train_stacked(data, settings, seeds, variant_dir, threads=1, on_divergence="fail",
                  log=log_line):
    """train() for each of `seeds`, all at once, into {variant_dir}/seed{s}:
    the same files, holding each seed's own training. Returns each seed's
    metrics rows."""
    torch.set_num_threads(threads)
    variant_dir = Path(variant_dir)
    if architecture(settings["model"]["architecture"]).fit is not None:  # nothing to train
        return {seed: train(data, settings, seed, variant_dir / f"seed{seed}", threads,
                            on_divergence, log) for seed in seeds}
    training = settings["training"]
    device = pick_device(training.get("device", "cpu"), log)
    log(f"training seeds {', '.join(map(str, seeds))} stacked on {device}")
    splits = {split: load_split(data, split) for split in SPLITS}
    input_shape = tuple(splits["train"][0].shape[1:])
    identity = {"settings": settings, "seed": list(seeds),
                "data": fingerprint(*(t for pair in splits.values() for t in pair)),
                "code": code_hash("train_stacked"), "device": device.type,
                "format": FORMAT_VERSION}
    splits = {split: (x.to(device), y.to(device)) for split, (x, y) in splits.items()}
    x_train, y_train = splits["train"]
    runs = []
    for seed in seeds:
        seed_everything(seed)  # as train(): the seed fixes the initial weights
        runs.append(Seed(seed, variant_dir / f"seed{seed}", variant_dir / RESUME_DIR / f"seed{seed}",
                         build_model(settings["model"], input_shape).to(device),
                         torch.Generator().manual_seed(seed), noise_stream(seed, TRAIN_NOISE)))
    reason = unstackable(runs[0].model, training)
    if reason:
        raise ValueError(f"variant {settings['variant']!r} cannot train its seeds stacked: "
                         f"{reason}. Set training.stack_seeds: false for it.")
    log(f"{settings['model']['architecture']}: "
        f"{sum(p.numel() for p in runs[0].model.parameters()):,} parameters per seed")
    precision = training.get("precision", "fp32")
    loss = objective_loss(training.get("objective", DEFAULT_OBJECTIVE))
    recon, epoch_steps = training["loss"], training.get("epoch_steps")
    steps_per_epoch = epoch_steps or math.ceil(len(x_train) / training["batch_size"])
    wanted = sorted(settings["checkpoints"])
    adam = {"lr": training["lr"],
            "weight_decay": training.get("weight_decay", DEFAULT_WEIGHT_DECAY)}
    skeleton = skeleton_of(runs[0].model, precision)  # the weights live on the stack

    def evaluated(run, names, epoch):
        return split_metrics(run.model, loss, splits, names, epoch * steps_per_epoch, recon,
                             precision)

    def seed_terms(params, buffers, inputs, x, y, taken):
        """One seed's loss and terms of a minibatch, `taken` steps into training."""
        with autocast(device, precision):  # the forward pass, as train()'s
            layers = functional_call(skeleton, (params, buffers), (inputs,))
            # no noise generator: a draw inside the stacked pass fails loudly
            terms = loss.terms(layers, Batch(x, y, taken, recon, None, len(x_train)))
        return terms["loss"], terms

    # each seed's gradient taken inside vmap, as one seed's backward pass
    # takes it: autograd through the vmapped pass would sum other ways
    stacked_gradients = vmap(grad(seed_terms, has_aux=True), in_dims=(0, 0, 0, 0, 0, None))

    def checkpoint(run):
        def write(name, state_dict, epoch, diverged=""):
            save_checkpoint(run.work / f"{name}.pt", state_dict, settings, input_shape,
                            run.seed, epoch, diverged)
        return write

    state_path = variant_dir / RESUME_DIR / STACKED_STATE
    saved = load_progress(state_path, identity, log)
    if saved is None:
        shutil.rmtree(variant_dir / RESUME_DIR, ignore_errors=True)
        for run in runs:
            # the seed's own progress, left when it last trained alone
            shutil.rmtree(run.out_dir / RESUME_DIR, ignore_errors=True)
            run.progress = first_progress(run.model, evaluated(run, SPLITS, 0), training,
                                          seed_log(log, run.seed))
            if 0 in wanted:
                checkpoint(run)("epoch0", run.model.state_dict(), 0)
        epoch = 0
        active = [run for run in runs if not run.progress["done"]]
        # with no epoch to train (max_epochs 0) a stack of all, saved, never stepped
        params, buffers = stack_module_state([ByRole(run.model) for run in active or runs])
        optimizer = torch.optim.Adam(params.values(), **adam)
    else:
        epoch = saved["epoch"]
        for run in runs:
            run.progress = saved["seeds"][run.seed]
            run.order.set_state(saved["order"][run.seed])
            run.noise.set_state(saved["noise"][run.seed])
        active = [run for run in runs if run.seed in saved["active"]]
        params = {name: p.to(device).requires_grad_() for name, p in saved["params"].items()}
        buffers = {name: b.to(device) for name, b in saved["buffers"].items()}
        optimizer = torch.optim.Adam(params.values(), **adam)
        optimizer.load_state_dict(saved["optimizer"])

    def save_progress():
        save({"identity": identity, "epoch": epoch,
              "seeds": {run.seed: run.progress for run in runs},
              "order": {run.seed: run.order.get_state() for run in runs},
              "noise": {run.seed: run.noise.get_state() for run in runs},
              "active": [run.seed for run in active],
              "params": {name: p.detach() for name, p in params.items()},
              "buffers": buffers, "optimizer": optimizer.state_dict()}, state_path)

    if saved is None:
        save_progress()
    while active:
        epoch += 1
        start = time.perf_counter()
        batches = []
        for run in active:
            order, run.progress["queue"] = epoch_batches(
                len(x_train), training["batch_size"], epoch_steps, run.order,
                run.progress["queue"])
            batches.append(order)
        totals = {}
        for step, idx in enumerate(zip(*batches), 1):
            bar(step, len(batches[0]), f"epoch {epoch}/{training['max_epochs']}")
            taken = (epoch - 1) * steps_per_epoch + step - 1
            index = torch.stack(idx).to(device)  # one copy and one gather per input for all seeds
            xs, ys = x_train[index], y_train[index]
            inputs = torch.stack([loss.inputs(Batch(x, y, taken, recon, run.noise, len(x_train)))
                                  for run, x, y in zip(active, xs, ys)])
            gradients, terms = stacked_gradients(params, buffers, inputs, xs, ys, taken)
            for name, p in params.items():
                p.grad = gradients[name]
            optimizer.step()
            for name, value in terms.items():  # in float64, as train() adds Python floats
                totals[name] = totals.get(name, 0.0) + value.detach().double() * len(idx[0])
        trained = sum(len(i) for i in batches[0])
        seconds = time.perf_counter() - start
        for position, run in enumerate(active):
            run.model.load_state_dict({name.removeprefix("model."): p[position].detach()
                                       for name, p in {**params, **buffers}.items()})
            start = time.perf_counter()
            row = {"epoch": epoch, **split_columns("train", {
                name: total[position].item() / trained for name, total in totals.items()}),
                **evaluated(run, SPLITS[1:], epoch)}
            # the stacked training pass, shared by all seeds, and this seed's evaluation
            row["seconds"] = seconds + time.perf_counter() - start
            if end_epoch(run.progress, row, run.model, settings, run.seed, on_divergence,
                         seed_log(log, run.seed)):
                if epoch in wanted:
                    checkpoint(run)(f"epoch{epoch}", run.model.state_dict(), epoch)
            else:
                run.progress["done"] = True  # diverged: leaves the stack
        going = [position for position, run in enumerate(active) if not run.progress["done"]]
        if going and len(going) < len(active):
            params, optimizer = restack(params, optimizer, going, adam)
            buffers = {name: b[going] for name, b in buffers.items()}
        active = [active[position] for position in going]
        save_progress()

    for run in runs:  # a job killed in here publishes every seed again
        last_checkpoints(run.progress, wanted, checkpoint(run))
        publish(run.work, run.out_dir, [f"epoch{e}" for e in wanted] + ["final"],
                settings["variant"], run.seed, run.progress["rows"])
    shutil.rmtree(variant_dir / RESUME_DIR)
    return {run.seed: run.progress["rows"] for run in runs}


def seed_log(log, seed):
    """`log`, each line naming `seed`: the seeds' lines interleave in one log."""
    return lambda line: log(f"seed {seed}: {line}")


def restack(params, optimizer, keep, adam):
    """The stacked parameters and Adam of the seeds at positions `keep` alone,
    each with the optimiser state it had."""
    kept = {name: p.detach()[keep].clone().requires_grad_() for name, p in params.items()}
    state = optimizer.state_dict()
    for moments in state["state"].values():
        for name in ("exp_avg", "exp_avg_sq"):
            moments[name] = moments[name][keep]
    optimizer = torch.optim.Adam(kept.values(), **adam)
    optimizer.load_state_dict(state)
    return kept, optimizer
