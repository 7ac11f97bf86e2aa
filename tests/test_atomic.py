"""Every output is written under a temporary name and renamed when complete;
temporaries of killed writers are cleaned up. (Killing real jobs: test_kill.py.)"""

import re

import pytest

from conftest import REPO
from hourglass.io import atomic_path, remove_temporaries

# Calls that write a file, and the argument that names it.
WRITERS = {
    "torch.save": r"torch\.save\([^,]+, (\w+)",
    "to_csv": r"\.to_csv\((\w+)",
    "savefig": r"\.savefig\((\w+)",
    "h5py.File": r"h5py\.File\((\w+), \"[wax]\"",
    "open for writing": r"\bopen\((\w+), \"[wax]b?\"",
    "copyfile": r"copyfile\([^,]+, (\w+)\)",
    "write_text/bytes": r"(\w+)\.write_(?:text|bytes)\(",
    "np.save": r"np\.save[z]?\((\w+)",
}


def test_every_writer_in_the_package_writes_an_atomic_temporary():
    """Each write call names `tmp`, the path atomic_path yields, on a line
    (or the line before) that opens atomic_path."""
    found = []
    for path in sorted((REPO / "src" / "hourglass").rglob("*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            for what, pattern in WRITERS.items():
                for target in re.findall(pattern, line):
                    found.append(what)
                    context = lines[number - 1] + line
                    assert target == "tmp" and "atomic_path(" in context, (
                        f"{path.name}:{number + 1}: {what} writes {target!r}, not an "
                        f"atomic_path temporary: {line.strip()}")
    assert {"torch.save", "to_csv", "savefig", "h5py.File", "copyfile"} <= set(found)


def test_a_stale_temporary_is_removed_before_writing(tmp_path):
    target = tmp_path / "table.csv"
    stale = tmp_path / ".table.csv.tmp"
    stale.write_text("half a table from a killed run")
    with atomic_path(target) as tmp:
        assert tmp == stale and not tmp.exists()
        tmp.write_text("a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n" and not stale.exists()


def test_a_failing_writer_leaves_neither_file(tmp_path):
    target = tmp_path / "matrix.h5"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_remove_temporaries_keeps_outputs_and_resumable_state(tmp_path):
    keep = [tmp_path / "a" / "seed0" / ".resume" / "state.pt", tmp_path / "a" / "metrics.csv",
            tmp_path / "figures" / "mds.png"]
    gone = [tmp_path / "a" / "seed0" / ".resume" / ".state.pt.tmp",
            tmp_path / "similarity" / ".rsa.h5.tmp", tmp_path / "figures" / ".mds.png.tmp"]
    for path in keep + gone:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert remove_temporaries(tmp_path) == sorted(gone)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)
