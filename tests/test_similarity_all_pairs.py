"""The all-pairs engine equals the pairwise functions, element by element."""

import numpy as np
import pytest
import torch

from hourglass.similarity import MEASURES, all_pairs

# (measure, options): every measure, and each option that changes a summary or a combination.
CASES = [(name, {}) for name in MEASURES] + [
    ("rsa", {"metric": "euclidean", "compare": "spearman"}),
    ("rsa", {"metric": "cosine", "compare": "kendall_tau_a"}),
    ("linear_cka", {"debiased": True}),
    ("rbf_cka", {"threshold": 0.5, "debiased": True}),
    ("procrustes_distance", {"kind": "euclidean"}),
    ("svcca", {"keep": 0.9}),
]


def layers(count=5, n=24, seed=0):
    """Representations of the same stimuli with different widths and layer shapes;
    the fifth is wide enough for linear CKA's Gram form, the others take its feature form."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 6))
    out = []
    for k in range(count):
        width = 3 + 2 * k if k != 4 else 40
        out.append(np.tanh(base @ rng.normal(size=(6, width)) + 0.5 * rng.normal(size=(n, width))))
    out[1] = out[1].reshape(n, 1, -1)  # a layer shape other than stimuli x features
    return out


def tolerance(measure, dtype=torch.float64):
    # Procrustes distances are steep near nu = 1 (d ~ sqrt(2 (1 - nu))): a
    # rounding error e in nu becomes about sqrt(2e) on the diagonal.
    if measure == "procrustes_distance":
        return 1e-7 if dtype == torch.float64 else 3e-3
    return 1e-10 if dtype == torch.float64 else 1e-6


def pairwise(reps, measure, options, others=None):
    f = MEASURES[measure].function
    cols = reps if others is None else others
    return np.array([[f(a, b, **options) for b in cols] for a in reps])


@pytest.mark.parametrize("measure, options", CASES)
def test_matches_pairwise(measure, options):
    reps = layers()
    result = all_pairs(reps, measure, **options)
    np.testing.assert_allclose(result, pairwise(reps, measure, options), atol=tolerance(measure))


@pytest.mark.parametrize("measure, options", CASES)
def test_chunked_with_loaders_matches_pairwise(measure, options):
    reps = layers()
    loads = []

    def loader(k):
        def load():
            loads.append(k)
            return reps[k]

        return load

    # Blocks of max_memory / 3 bytes, room for the largest summary: several blocks.
    bound = MEASURES[measure].plan(**options).summary_bytes
    largest = max(bound(r.shape[0], r[0].size, 8) for r in reps)
    result = all_pairs([loader(k) for k in range(len(reps))], measure, max_memory=3 * largest, **options)
    np.testing.assert_allclose(result, pairwise(reps, measure, options), atol=tolerance(measure))
    assert len(loads) > len(reps)  # blocks after the first are loaded again for each block of rows


def test_each_summary_computed_once_without_memory_limit():
    reps = layers()
    loads = []
    all_pairs([lambda k=k: loads.append(k) or reps[k] for k in range(len(reps))], "linear_cka")
    assert sorted(loads) == list(range(len(reps)))


AGAINST_OTHERS = [("linear_cka", {}), ("rsa", {"compare": "spearman"}), ("pwcca", {}), ("cca", {})]


@pytest.mark.parametrize("measure, options", AGAINST_OTHERS)
def test_against_others(measure, options):
    reps, others = layers(3, seed=1), layers(4, seed=2)
    others = [o[:, ::-1] for o in others]
    expected = pairwise(reps, measure, options, others)
    np.testing.assert_allclose(all_pairs(reps, measure, others=others, **options), expected, atol=1e-10)
    chunked = all_pairs(reps, measure, others=others, max_memory=3 * 24 * 24 * 8 * 2, **options)
    np.testing.assert_allclose(chunked, expected, atol=1e-10)


@pytest.mark.parametrize("measure, options", CASES)
def test_float32(measure, options):
    reps = layers()
    result = all_pairs([torch.tensor(r) for r in reps], measure, dtype=torch.float32, **options)
    np.testing.assert_allclose(result, pairwise(reps, measure, options), atol=tolerance(measure, torch.float32))


def test_symmetric_output_and_asymmetric_pwcca():
    reps = layers()
    cka = all_pairs(reps, "linear_cka")
    assert np.array_equal(cka, cka.T)
    assert not np.allclose(all_pairs(reps, "pwcca"), all_pairs(reps, "pwcca").T)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("measure", list(MEASURES))
def test_cuda_matches_cpu(measure):
    reps = layers()
    for dtype in (torch.float64, torch.float32):
        result = all_pairs(reps, measure, device="cuda", dtype=dtype)
        np.testing.assert_allclose(result, all_pairs(reps, measure), atol=tolerance(measure, dtype))


def test_unknown_measure_lists_known_names():
    with pytest.raises(ValueError, match="unknown similarity measure 'cka'.*linear_cka.*procrustes"):
        all_pairs(layers(2), "cka")


def test_unknown_option_names_the_measure():
    with pytest.raises(ValueError, match="'linear_cka' takes the options"):
        all_pairs(layers(2), "linear_cka", debias=True)
    with pytest.raises(ValueError, match="unknown RDM comparison 'cosine'"):
        all_pairs(layers(2), "rsa", compare="cosine")


def test_memory_limit_too_small_says_how_much_is_needed():
    with pytest.raises(ValueError, match="max_memory=100 bytes is too small.*at least"):
        all_pairs(layers(2), "linear_cka", max_memory=100)


def test_errors_name_the_representation():
    reps = layers(3)
    reps[2] = np.zeros_like(reps[2])
    with pytest.raises(ValueError, match="'dec2' is constant"):
        all_pairs(reps, "linear_cka", names=["enc1", "enc2", "dec2"])
    reps = layers(3)
    with pytest.raises(ValueError, match=r"'representations\[0\]' and 'others\[1\]' hold different numbers"):
        all_pairs(reps, "procrustes", others=[reps[0], reps[1][:20]])
    with pytest.raises(ValueError, match="2 names given for 3"):
        all_pairs(reps, "cca", names=["a", "b"])


@pytest.mark.parametrize("measure", ["linear_cka", "pwcca"])
@pytest.mark.parametrize("max_memory", [None, 3 * 12 * 12 * 8])
def test_progress_ends_with_every_pair_done(measure, max_memory):
    reps = [np.random.default_rng(i).normal(size=(12, 5)) for i in range(5)]
    lines = []
    all_pairs(reps, measure, max_memory=max_memory, progress=lines.append)
    total = 15 if measure == "linear_cka" else 25  # pwcca is not symmetric: every ordered pair
    assert lines[-1].endswith(f"{total} of {total} pairs done")
    assert int(lines[0].split()[0]) == 1 and len(lines) > 5
    # linear CKA says which form its summaries took (12 stimuli x 5 features: all in feature form)
    made = lines[-1].split()[0]
    assert (f"summaries made ({made} in feature form)" in lines[-1]) == (measure == "linear_cka")
