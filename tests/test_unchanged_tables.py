"""The analyses registry moved the consistency analysis and the all-pairs
measures onto rules made from registry entries; the numbers must not move
with them. tests/golden/stress/ holds the tables that tests/killing.py's
study got from the rules before the registry (commit 02926d5, run serially
on a 2-core x86-64 machine with torch 2.14.1 on CPU, as CI runs): today's
serial run of the same study must write the same bytes. Training and these
sums repeat exactly on one machine and thread count (tests/test_resume.py,
tests/test_stress.py); a difference here is a change in what is computed."""

import hashlib
from pathlib import Path

import h5py
import pytest

import killing

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).resolve().parent / "golden" / "stress"
# The all-pairs table (0.9 MB) and matrix, by their SHA-256 then. Since then
# the matrix file also labels each layer's region (format version 2, from the
# models' roles); its values and every other label are as they were.
LINEAR_CKA_CSV = "b11e42dbe57db8cd5dc40faabe35598dab78e14a4db2f6d72f7f4c243666b303"
LINEAR_CKA_MATRIX = "93d43478829d1ad5cbc2a52cc4705eccc6006a4b9aa62fe3cdc2e4be3b8e8409"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("table", ["consistency.csv", "mds.csv"])
def test_the_consistency_analysis_writes_the_bytes_of_the_rules_before_it(serial_study, table):
    written = killing.study_dir(serial_study) / "similarity" / table
    assert written.read_bytes() == (GOLDEN / table).read_bytes()


def test_the_all_pairs_measure_writes_the_same_table_and_matrix(serial_study):
    folder = killing.study_dir(serial_study) / "similarity"
    assert sha256((folder / "linear_cka.csv").read_bytes()) == LINEAR_CKA_CSV
    with h5py.File(folder / "linear_cka.h5", "r") as f:
        assert sha256(f["matrix"][()].tobytes()) == LINEAR_CKA_MATRIX
