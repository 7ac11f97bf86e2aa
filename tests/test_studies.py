"""Every study shipped with the workflow is valid and plans its jobs: the
default study and each of configs/ (paper-scale ones are dry-run, not
trained), with the claims each checks."""

import shutil

import pytest

from conftest import REPO
from hourglass.config import check_files
from hourglass.studies import find_schema
from conftest import snakemake

STUDIES = ["config.yaml", *sorted(p.relative_to(REPO).as_posix()
                                  for p in (REPO / "configs").glob("*.yaml"))]
# The reduced consistency study overrides the full one.
STANDS_ALONE = [s for s in STUDIES if not s.endswith("_20k.yaml")]


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_is_valid(study):
    files = [REPO / "configs" / "fashion_mnist_consistency.yaml"] if study.endswith("_20k.yaml") \
        else []
    check_files([*files, REPO / study], find_schema())


@pytest.fixture(scope="module")
def copy(workflow_copy):
    root = workflow_copy("studies")
    shutil.copytree(REPO / "configs", root / "configs")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("study", STANDS_ALONE)
def test_every_study_plans_its_jobs_and_findings(copy, study):
    dry = snakemake(copy, "-n", "--configfile", study).stdout
    # a study of library networks only (the inversion of ResNets) trains nothing
    trains = "variants: {}" not in (REPO / study).read_text()
    assert ("rule train:" in dry) == trains and "rule figure:" in dry
    assert ("rule findings:" in dry) == ("findings:" in (REPO / study).read_text())
