"""`make figures` re-runs a notebook when a checkpoint it evaluates changes: the Makefile lists them per notebook.

The list is checked against what each notebook is seen to use: the names of committed networks that appear in
the notebook, in its ``paperlib/<notebook>_eval.py`` and in the tables it wrote (``figures/<notebook>/``).
"""
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def rule_patterns() -> dict:
    """``{notebook: [checkpoint file patterns]}`` from the Makefile's ``build/notebooks/<nb>.ipynb: $(wildcard ...)``."""
    out = {}
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.fullmatch(r"build/notebooks/(\w+)\.ipynb: \$\(wildcard ([^)]*)\)", line.strip())
        if m:
            out[m.group(1)] = m.group(2).split()
    return out


def networks() -> list[str]:
    return sorted(p.stem for p in (ROOT / "checkpoints").glob("*.json"))


def used_by(nb: str, names: list[str]) -> set[str]:
    texts = [(ROOT / "notebooks" / f"{nb}.ipynb").read_text()]
    module = ROOT / "paperlib" / f"{nb}_eval.py"
    if module.exists():
        texts.append(module.read_text())
    texts += [p.read_text() for p in (ROOT / "figures" / nb).glob("*.csv")]
    text = "\n".join(texts)
    return {n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)}


def uncovered(used: set[str], patterns: list[str]) -> set[str]:
    """Networks used whose files (``<name>.pt``, ``<name>.json``) no pattern matches."""
    return {n for n in used
            if not all(any(fnmatch.fnmatch(f"checkpoints/{n}{ext}", p) for p in patterns) for ext in (".pt", ".json"))}


def test_every_rule_names_a_notebook_and_checkpoints_that_exist():
    rules = rule_patterns()
    assert set(rules) <= set(NOTEBOOKS), set(rules) - set(NOTEBOOKS)
    for nb, patterns in rules.items():
        for p in patterns:
            assert list(ROOT.glob(p)), f"{nb}: {p} matches no file"


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_a_notebook_reruns_when_a_checkpoint_it_uses_changes(nb):
    used = used_by(nb, networks())
    assert not uncovered(used, rule_patterns().get(nb, [])), (
        f"Makefile: build/notebooks/{nb}.ipynb does not depend on {sorted(uncovered(used, rule_patterns().get(nb, [])))}")


def test_the_check_sees_what_the_networks_notebooks_use():
    """Not vacuous: each paper's notebook is seen to use networks, and dropping a pattern is caught."""
    names, rules = networks(), rule_patterns()
    for nb in ("cascnn", "svoboda", "qgcn", "onetomany", "posterior"):
        assert used_by(nb, names), nb
    used = used_by("posterior", names)
    assert "qgcn-color" in used and "cascnn-q1-60" in used      # its regression baselines
    assert uncovered(used, [p for p in rules["posterior"] if "qgcn" not in p]) == {"qgcn-color"}
