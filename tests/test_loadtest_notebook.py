"""The policy load-test notebook runs top to bottom in its quick form."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT


@pytest.mark.slow
@pytest.mark.ray
def test_policy_loadtest_notebook_executes_quick(ray_session, monkeypatch):
    # the kernel's ray.init() joins the session's Ray (RAY_ADDRESS) instead of starting a second one
    monkeypatch.setenv("RAY_ADDRESS", ray_session.get_runtime_context().gcs_address)
    path = ROOT / "notebooks" / "policy_loadtest.ipynb"
    nb = nbformat.read(path, as_version=4)
    # the code cell: the introduction (markdown) names both forms too
    setup = next(c for c in nb.cells if c.cell_type == "code" and "QUICK = False" in c.source)
    setup.source = setup.source.replace("QUICK = False", "QUICK = True")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # the quick form ran: 4 policies x 2 scenarios x 1 seed, and the 2-point oracle grid on both scenarios
    assert "12 runs ok" in setup.outputs[-1]["data"]["text/plain"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
    listing = nb.cells[-1].outputs[0]["data"]["text/plain"]
    assert "report.html" in listing and "runs.parquet" in listing
