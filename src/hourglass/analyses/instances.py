"""How many instances representational consistency needs (Durbha et al.,
Fig. 5): RC per layer at the final checkpoint from nested subsets of the
trained seeds, without training more.

For each of `subsets` random orders of the seeds (drawn from `seed`), the
first k seeds of the order, for each k of `sizes`, form a subset; its RC is
the mean Pearson r between the RDMs of its pairs of seeds, the same RC the
consistency analysis computes on every seed. A layer whose RDM is constant
in some seed has no RC (NaN, with the reason), as there.
"""

import torch

from hourglass.activations import layer_regions, read_layer, without_diverged
from hourglass.analyses.consistency import (constant_rdms, second_order, seed_pair_means,
                                            undefined_reason)
from hourglass.checks import check_activation_files
from hourglass.io import write_table
from hourglass.similarity.rdm import rdm


def subset_rc(r, order, sizes):
    """RC of the first k seeds of `order` for each k of `sizes`, from the
    seeds' second-order Pearson r matrix `r` (S x S)."""
    return [seed_pair_means(r[order[:k]][:, order[:k]])[0].item() for k in sizes]


def run(activations, settings, out, threads=1):
    """Table `instances`: per layer of the variant's final activations, the
    RC of each subset size and subset."""
    check_activation_files(activations, one_variant=True)
    torch.set_num_threads(threads)
    kept, _ = without_diverged(activations)
    final = sorted(((int(a["seed"]), path, a) for path, a in kept.items()
                    if a["checkpoint"] == "final"), key=lambda s: s[0])
    sizes = settings["sizes"]
    if max(sizes) > len(final):
        raise ValueError(f"analyses.instances.sizes asks for {max(sizes)} instances, but "
                         f"{len(final)} seeds trained to the end; ask for at most {len(final)}")
    attrs = final[0][2]
    regions = layer_regions(attrs)
    generator = torch.Generator().manual_seed(settings["seed"])
    orders = [torch.randperm(len(final), generator=generator) for _ in range(settings["subsets"])]
    rows = []
    for index, layer in enumerate(attrs["layer_names"]):
        acts = [torch.as_tensor(read_layer(path, layer), dtype=torch.float64)
                for _, path, _ in final]
        rdms = torch.stack([rdm(a) for a in acts])
        reason = undefined_reason(acts[0][0].numel(), constant_rdms(acts, rdms))
        r = second_order(rdms)
        for subset, order in enumerate(orders):
            values = [float("nan")] * len(sizes) if reason else subset_rc(r, order, sizes)
            rows += [dict(variant=attrs["variant"], layer=layer, layer_index=index,
                          region=regions[layer], instances=k, subset=subset, rc=value,
                          seeds=" ".join(str(final[i][0]) for i in sorted(order[:k].tolist())),
                          undefined=reason)
                     for k, value in zip(sizes, values)]
    write_table(rows, out["instances"])
