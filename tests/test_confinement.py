"""Confinement: profile paths stay inside the scenario's folder and agents/; a local Ray listens on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from swarmopt.loader import AGENTS_DIR, InputError, build_scenario, load_scenario

from conftest import MH_SCENARIO, ROOT

FIVE = ["strategic_orchestrator.yaml", "market_hunter.yaml", "narrative_architect.yaml", "market_analyzer.yaml",
        "execution_agent.yaml"]


def scenario_with(tmp_path, ref: str):
    """A scenario in ``tmp_path`` whose Market Hunter profile is ``ref``."""
    path = tmp_path / "s.yaml"
    path.write_text(MH_SCENARIO.read_text().replace("  - market_hunter.yaml", f"  - {json.dumps(ref)}"))
    return path


@pytest.mark.parametrize("ref", ["/etc/passwd", "../../../../../etc/passwd", "/etc/hostname",
                                 str(ROOT / "scenarios" / "surge.yaml"), "../" + "x/../" * 3 + "etc/passwd"])
def test_profile_outside_the_scenario_folder_and_agents_is_never_opened(tmp_path, ref):
    with pytest.raises(InputError) as err:
        load_scenario(scenario_with(tmp_path, ref))
    msg = str(err.value)
    assert "is outside the scenario's folder and" in msg and ref[:20] in msg and "allowed: profile files" in msg


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "hunter.yaml").symlink_to("/etc/hostname")
    with pytest.raises(InputError, match="'hunter.yaml' is outside"):
        load_scenario(scenario_with(tmp_path, "hunter.yaml"))


def test_profiles_inside_the_folder_its_subfolders_and_agents_are_found(tmp_path):
    (tmp_path / "sub").mkdir()
    shutil.copy(AGENTS_DIR / "market_hunter.yaml", tmp_path / "sub" / "hunter.yaml")
    assert load_scenario(scenario_with(tmp_path, "sub/hunter.yaml")).agents[1].id == "market-hunter"
    assert load_scenario(scenario_with(tmp_path, str(AGENTS_DIR / "market_hunter.yaml"))).agents[1].id == \
        "market-hunter"
    # from scenarios/, "../agents/x.yaml" climbs out of the folder but lands in agents/
    sc = build_scenario({"name": "x", "duration_s": 600, "agents": ["../agents/" + f for f in FIVE]},
                        "x.yaml", ROOT / "scenarios")
    assert len(sc.agents) == 5


@pytest.mark.ray
def test_local_ray_listens_on_loopback_only():
    """A fresh Ray started by ensure_ray (in a child process: the session's Ray is
    already up here), one actor created; every listening socket of its processes
    must be on 127.0.0.1 (or its IPv6-mapped form)."""
    code = """
import json, psutil, ray
from swarmopt.runtime.ray_backend import ensure_ray
ensure_ray(num_cpus=1)
@ray.remote(num_cpus=0)
class A:
    def ping(self):
        return 1
a = A.remote()
ray.get(a.ping.remote())
me = psutil.Process()
tree = {me.pid} | {p.pid for p in me.children(recursive=True)}
try:
    conns = psutil.net_connections(kind="inet")
except psutil.AccessDenied:
    conns = []
print(json.dumps([c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.pid in tree]))
ray.shutdown()
"""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert p.returncode == 0, p.stderr
    listening = json.loads(p.stdout.splitlines()[-1])
    if not listening:
        pytest.skip("psutil sees no listening sockets of the Ray processes here")
    assert set(listening) <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
    assert len(listening) >= 3  # GCS, raylet, the actor's worker at least
