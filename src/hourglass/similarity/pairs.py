"""The all-pairs engine: a measure between every pair of many representations."""

import ctypes

import numpy as np
import torch

from hourglass.similarity.arrays import check_same_stimuli, representation
from hourglass.similarity.measures import measure_plan

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


def all_pairs(
    representations,
    measure: str,
    *,
    others=None,
    names=None,
    other_names=None,
    dtype=torch.float64,
    device="cpu",
    max_memory: int | None = None,
    progress=None,
    **measure_kwargs,
) -> np.ndarray:
    """The R x R matrix of `measure` between `representations` (R x S against `others`).

    representations, others: sequences of stimuli x features arrays (NumPy or
        torch, any layer shape) or of zero-argument callables returning one,
        so representations can be streamed from files. All must hold the
        same stimuli.
    measure: a name in `MEASURES`; measure_kwargs are its options
        (e.g. debiased=True, or metric= and compare= for "rsa").
    names, other_names: labels for error messages (default "representations[i]").
    dtype, device: precision and device of the computation. float32 halves
        memory and about halves time; against float64 it erred by at most
        2e-7 (linear CKA, debiased too), 8e-8 (RSA), 4e-7 (CCA), 1.4e-7
        (SVCCA) and 3.4e-7 (PWCCA) on 40 random representations of
        2,000 x 256 (benchmarks/similarity.py). Procrustes distances near 0
        are off by up to about 1e-3, see `procrustes_distance`.
    max_memory: bytes the computation may hold at once, above what the
        process held before (None: no limit; the summaries are then held once).
    progress: called with a line of text (summaries made, in which form where
        a measure has several, and pairs done of all)
        after each summary and each block of pairs; the caller decides how
        often to show it.

    Each representation is summarised once (a centred Gram matrix or the
    centred features for CKA, a prepared RDM triangle for RSA, a factor of
    the Gram matrix for Procrustes, a rank-revealing basis for CCA), and
    summaries are combined block by block with batched products. Entry
    [i, j] is measure(representations[i], others[j]), or
    measure(representations[i], representations[j]): the same number the
    pairwise function gives. Symmetric measures fill the upper triangle and
    mirror it; PWCCA takes both directions from one SVD within a block.

    With `max_memory`, representations are loaded and summarised in blocks
    of at most max_memory / 3 bytes of summaries (by each measure's upper
    bound on a summary's size), and two blocks are held at once; the last
    third is room for loading and summarising the next representation and
    for combining (RSA and Gram-form CKA stack a few thousand entries of
    each summary at a time; the rest stack a block's factors once more).
    A representation is then loaded and summarised once as a row and again
    for each earlier block of rows: memory is bought with time. Measured
    streaming 40 representations of 2,000 x 256 from HDF5 (RSA, 610 MiB of
    summaries), the peak above the resident size before the call stayed
    under the budget at 512 MiB, 1 GiB and 2 GiB (benchmarks/similarity.py
    --memory). On glibc this also makes every later array of 4 MB or more
    in the process get its own memory map (see `_return_large_blocks`),
    which cost RSA 17-42 % more time there. Returns a float64 NumPy array.
    """
    plan = measure_plan(measure, **measure_kwargs)
    if max_memory is not None:
        _return_large_blocks()
    rows = _labelled(representations, names, "representations")
    cols = rows if others is None else _labelled(others, other_names, "others")
    budget = None if max_memory is None else max_memory // 3
    itemsize = torch.empty((), dtype=dtype).element_size()
    reference = None  # (name, stimuli) of the first representation loaded: all must match it
    # A symmetric measure of representations with themselves fills one triangle.
    triangle = others is None and plan.symmetric
    pairs = len(rows) * (len(rows) + 1) // 2 if triangle else len(rows) * len(cols)
    made, done = 0, 0
    forms = {}  # how many summaries took each form, for measures with several

    def report():
        if progress is not None:
            taken = ", ".join(f"{count} in {form}" for form, count in forms.items())
            progress(f"{made} summaries made{f' ({taken})' if taken else ''}, {done} of {pairs} pairs done")

    def blocks(sources):
        # Yields lists of (index, summary) whose summaries fit in `budget`. The
        # next representation is loaded before the block is handed over, but it
        # is summarised only after the consumer has dropped the previous block.
        nonlocal reference, made
        block, used = [], 0
        for index, (name, source) in sources:
            X = representation(
                source() if callable(source) else source,
                name,
                dtype=dtype,
                device=device,
                min_stimuli=plan.min_stimuli,
            )
            if reference is None:
                reference = (name, X.shape[0])
            check_same_stimuli(reference[1], X.shape[0], (reference[0], name))
            size = plan.summary_bytes(X.shape[0], X.shape[1], itemsize)
            if budget is not None:
                if size > budget:
                    raise ValueError(
                        f"max_memory={max_memory} bytes is too small: the summary of {name!r} for {measure!r} "
                        f"can take {size} bytes and two blocks and a third for summarising are held at once; "
                        f"allow at least {3 * size}"
                    )
                if block and used + size > budget:
                    yield block
                    block, used = [], 0
            block.append((index, plan.summarise(X, name)))
            used += size
            made += 1
            if plan.form is not None:
                form = plan.form(*X.shape)
                forms[form] = forms.get(form, 0) + 1
            report()
        if block:
            yield block

    out = np.full((len(rows), len(cols)), np.nan)

    def fill(A, B):
        nonlocal done
        summaries = [s for _, s in A]
        # The very same list lets a symmetric combine compute each pair once.
        others = summaries if A is B else [s for _, s in B]
        values = plan.combine(summaries, others).cpu().double().numpy()
        out[np.ix_([i for i, _ in A], [j for j, _ in B])] = values
        done += len(A) * (len(A) + 1) // 2 if triangle and A is B else len(A) * len(B)
        report()

    for row_block in blocks(enumerate(rows)):
        if others is not None:
            for col_block in blocks(enumerate(cols)):
                fill(row_block, col_block)
                del col_block  # release its summaries before the next block is made
            continue
        fill(row_block, row_block)
        after = row_block[-1][0] + 1
        for col_block in blocks(list(enumerate(rows))[after:]):
            fill(row_block, col_block)
            if not plan.symmetric:
                fill(col_block, row_block)
            del col_block
    if triangle:
        out = np.triu(out) + np.triu(out, 1).T
    return out


def _return_large_blocks():
    # glibc's malloc raises its threshold for giving an array its own memory
    # map up to 32 MB as arrays are freed, so summaries and the temporaries of
    # summarising come to share the heap, and the holes freed summaries leave
    # are never returned: the peak was 1.5x max_memory. A fixed 4 MB threshold
    # returns them; mallopt cannot be undone, so it holds for the rest of the
    # process. Elsewhere than glibc: nothing.
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 4 * 2**20)
    except (OSError, AttributeError):
        pass


def _labelled(sources, names, what):
    sources = list(sources)
    if names is None:
        names = [f"{what}[{i}]" for i in range(len(sources))]
    if len(names) != len(sources):
        raise ValueError(f"{len(names)} names given for {len(sources)} {what}: give one name per representation")
    if not sources:
        raise ValueError(f"no {what} given: pass at least one array or loader")
    return list(zip(names, sources))
