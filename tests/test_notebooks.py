"""The notebooks run top to bottom on bundled data, call only the public API, and are stored without outputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # integration tests of minutes: `bash scripts/test.sh --all` (CI) runs them

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_both_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_train_and_evaluate.ipynb", "02_at_risk_and_campaign.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs_and_public_api_only(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("outputs") == [] and c.get("execution_count") is None for c in code)
    source = "\n".join("".join(c["source"]) for c in code)
    assert not re.search(r"churnml(\.\w+)*\._\w+|from churnml\S* import _\w+|\._[a-z]\w*\(", source), "private helper used"


def test_notebooks_run_top_to_bottom(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    work = tmp_path / "repo"
    (work / "notebooks").mkdir(parents=True)
    shutil.copytree(REPO / "configs", work / "configs")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'nb.db'}")
    for path in NOTEBOOKS:  # in order: 02 uses the model 01 registered (or trains its own)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work / "notebooks")}}).execute()
        images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
        assert images >= 1, f"{path.name} shows no plot"
    assert (work / "notebooks" / "outputs" / "at_risk.csv").is_file()
    assert (work / "notebooks" / "outputs" / "campaign_plan.csv").is_file()
