import pytest

from hourglass.data import prepare


@pytest.fixture(scope="session")
def digits_file(tmp_path_factory):
    """The digits dataset file as the pipeline writes it (probe of 100)."""
    out = tmp_path_factory.mktemp("data") / "digits.h5"
    prepare("digits", root="unused", download=False, val_fraction=0.1, train_size=None,
            probe_size=100, split_seed=0, out=out)
    return out
