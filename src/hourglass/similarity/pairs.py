"""The all-pairs engine: a measure between every pair of many representations."""

import numpy as np
import torch

from hourglass.similarity.arrays import check_same_stimuli, representation
from hourglass.similarity.measures import measure_plan


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
    dtype, device: precision and device of the computation (float32 halves
        memory and time, with errors of about 1e-5; Procrustes distances
        near 0 are off by up to about 1e-3, see `procrustes_distance`).
    max_memory: bytes of summaries to hold at once (None: no limit).
    progress: called with a line of text (summaries made, pairs done of all)
        after each summary and each block of pairs; the caller decides how
        often to show it.

    Each representation is summarised once (a centred Gram matrix for CKA,
    a prepared RDM triangle for RSA, a factor of the Gram matrix for
    Procrustes, a rank-revealing basis for CCA), and summaries are
    combined block by block with batched products. Entry [i, j] is measure(representations[i], others[j]), or
    measure(representations[i], representations[j]): the same number the
    pairwise function gives. Symmetric measures fill the upper triangle and
    mirror it.

    With `max_memory`, representations are loaded and summarised in blocks
    of at most max_memory / 2 bytes of summaries (by each measure's upper
    bound on a summary's size), and two blocks are held at once. A
    representation is then loaded and summarised once as a row and again
    for each earlier block of rows: memory is bought with time. Combining
    a pair of blocks can briefly need about as much memory again.
    Returns a float64 NumPy array.
    """
    plan = measure_plan(measure, **measure_kwargs)
    rows = _labelled(representations, names, "representations")
    cols = rows if others is None else _labelled(others, other_names, "others")
    budget = None if max_memory is None else max_memory // 2
    itemsize = torch.empty((), dtype=dtype).element_size()
    reference = None  # (name, stimuli) of the first representation loaded: all must match it
    # A symmetric measure of representations with themselves fills one triangle.
    triangle = others is None and plan.symmetric
    pairs = len(rows) * (len(rows) + 1) // 2 if triangle else len(rows) * len(cols)
    made, done = 0, 0

    def report():
        if progress is not None:
            progress(f"{made} summaries made, {done} of {pairs} pairs done")

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
                        f"can take {size} bytes and two blocks are held at once; allow at least {2 * size}"
                    )
                if block and used + size > budget:
                    yield block
                    block, used = [], 0
            block.append((index, plan.summarise(X, name)))
            used += size
            made += 1
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


def _labelled(sources, names, what):
    sources = list(sources)
    if names is None:
        names = [f"{what}[{i}]" for i in range(len(sources))]
    if len(names) != len(sources):
        raise ValueError(f"{len(names)} names given for {len(sources)} {what}: give one name per representation")
    if not sources:
        raise ValueError(f"no {what} given: pass at least one array or loader")
    return list(zip(names, sources))
