"""Live mode: observers, the live state, the Prometheus export, the HTTP server,
the Jupyter view, and the dashboard rendered by a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarmopt.live.prom import DURATION_BUCKETS_S, TOKEN_BUCKETS
from swarmopt.live.server import LiveServer
from swarmopt.live.state import DECISION_EVENTS
from swarmopt.metrics import health_score
from swarmopt.observe import Fanout, Observer
from swarmopt.results import Collector
from swarmopt.simulation import Simulation

from conftest import MH_SCENARIO, ROOT, short

DURATION_S = 3600.0  # the fault starts at 30 min; the optimizer has acted by the end


class Recorder(Observer):
    def __init__(self) -> None:
        self.got: dict[str, list] = {"rows": [], "events": [], "samples": []}

    def rows(self, rows):
        self.got["rows"] += rows

    def events(self, events):
        self.got["events"] += events

    def samples(self, samples):
        self.got["samples"] += samples


@pytest.fixture(scope="module")
def served(mh_scenario):
    """A one-hour run of the worked example (seed 1) with a live server and a recorder attached."""
    sc = short(mh_scenario, DURATION_S, seed=1)
    rec = Recorder()
    with LiveServer(sc) as server:
        sim = Simulation(sc, runtime="local", observers=[*server.observers, rec])
        sim.run()
        yield sim, server, rec


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_observers_get_every_row_event_and_sample_once(served):
    sim, _, rec = served
    assert rec.got["rows"] == sim._sink.metric_rows
    assert rec.got["events"] == sim._sink.event_rows
    per_agent = sim.metrics.groupby("agent")["decision_count"].sum()
    tasks = pd.Series([s.n for s in rec.got["samples"]], [s.agent for s in rec.got["samples"]]).groupby(level=0).sum()
    pd.testing.assert_series_equal(tasks.sort_index(), per_agent.sort_index(), check_names=False)
    s = rec.got["samples"][0]
    assert s.tokens_in.size == s.tokens_out.size == s.tier.size == s.n


def test_fanout_sends_nothing_twice_after_a_rewind(mh_scenario):
    """A restarted actor's ticks are replayed: the collector takes them again, observers do not."""
    rec = Recorder()
    out = Fanout(Collector(mh_scenario, narrate_events=False), [rec])
    r1, r2, r3 = [{"agent": "a", "i": i} for i in range(3)]
    e1 = {"t_s": 0.0, "event": "x"}
    out.rows([r1])
    mark = out.mark()
    out.rows([r2])
    out.events([e1])
    out.rewind(mark)
    out.rows([r2])
    out.events([e1])
    out.rows([r3])
    assert out.collector.metric_rows == [r1, r2, r3] and out.collector.event_rows == [e1]
    assert rec.got["rows"] == [r1, r2, r3] and rec.got["events"] == [e1]


def test_api_state_shows_the_run(served):
    sim, server, _ = served
    code, ctype, body = get(server.url + "api/state")
    assert code == 200 and ctype == "application/json"
    state = json.loads(body)
    m = sim.metrics
    assert state["now_s"] == DURATION_S and [a["id"] for a in state["agents"]] == [a.id for a in sim.scenario.agents]
    for a in state["agents"]:
        last = m[m["agent"] == a["id"]].iloc[-1]
        assert a["last"]["decision_count"] == last["decision_count"]
        assert a["health"] == pytest.approx(health_score(last.to_dict()))
        assert a["slo"]["response_time"] == (last["response_time_ms_mean"] <= 2000.0)
        assert len(a["history"]["t_end_s"]) == 60  # the last hour of 60 s windows
    ev = sim.events
    decisions = ev[ev["event"].isin(["optimization.scheduled", "optimization.kept", "optimization.rolled_back",
                                     "optimization.reverted", "optimization.restored"])]
    assert len(decisions) >= 2
    assert state["optimizer"]["decisions"][0]["event"] == decisions.iloc[-1]["event"]
    assert state["optimizer"]["autonomy"] == sim.optimizer_state()["autonomy"]
    assert get(server.url + "nope")[0] == 404


def test_prometheus_metrics_follow_the_genai_conventions_and_the_run(served):
    sim, server, _ = served
    code, ctype, body = get(server.url + "metrics")
    assert code == 200 and ctype.startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    m, ev = sim.metrics, sim.events
    dur = fams["gen_ai_client_operation_duration_seconds"]
    assert dur.type == "histogram"
    counts: dict[tuple, float] = {}
    for s in dur.samples:
        if s.name.endswith("_count"):
            assert s.labels["gen_ai_operation_name"] == "invoke_agent"
            key = (s.labels["gen_ai_agent_name"], s.labels["gen_ai_request_model"])
            counts[key] = counts.get(key, 0) + s.value
    bounds = sorted({float(s.labels["le"]) for s in dur.samples if s.name.endswith("_bucket")})
    assert bounds == [*DURATION_BUCKETS_S, float("inf")]
    # one observation per simulated decision (the per-task samples, not window figures), labelled with the
    # model tier that served it: the windows' tier shares x decisions count the same decisions
    n = m["decision_count"]
    tiers = pd.DataFrame({"fast": m["fast_tier_share"] * n, "strong": m["strong_tier_share"] * n,
                          "agent": m["agent"]}).fillna(0.0)
    tiers["standard"] = n - tiers["fast"] - tiers["strong"]
    expected = {(a, t): v for a, g in tiers.groupby("agent") for t in ("fast", "standard", "strong")
                if (v := round(g[t].sum())) > 0}
    assert counts == expected
    tok = fams["gen_ai_client_token_usage"]
    sums: dict[tuple, float] = {}  # summed over the model tiers that served the agent
    for s in tok.samples:
        if s.name.endswith("_sum"):
            key = (s.labels["gen_ai_agent_name"], s.labels["gen_ai_token_type"])
            sums[key] = sums.get(key, 0.0) + s.value
    for agent, g in m.groupby("agent"):
        assert sums[(agent, "input")] == g["input_tokens"].sum() and sums[(agent, "output")] == g["output_tokens"].sum()
    assert {float(s.labels["le"]) for s in tok.samples if s.name.endswith("_bucket")} == {*TOKEN_BUCKETS, float("inf")}
    measured = ev[ev["event"] == "optimization.measured"]
    judged = measured[measured["decision"].fillna("") != ""].groupby("decision").size().to_dict()
    got = {}
    for s in fams["swarmopt_optimizer_changes"].samples:
        if s.name == "swarmopt_optimizer_changes_total":
            got[s.labels["decision"]] = got.get(s.labels["decision"], 0) + s.value
    assert got == judged and sum(judged.values()) >= 1
    health = {s.labels["agent"]: s.value for s in fams["swarmopt_agent_health_score"].samples}
    for agent, g in m.groupby("agent"):
        assert health[agent] == pytest.approx(health_score(g.iloc[-1].to_dict()))
    assert fams["swarmopt_optimizer_autonomy_ratio"].samples[0].value == sim.optimizer_state()["autonomy"]
    assert {"swarmopt_agent_slo_met", "swarmopt_system_score", "swarmopt_agent_decisions",
            "swarmopt_agent_autonomy_ratio"} <= set(fams)


def test_jupyter_view_updates_after_every_cycle(mh_scenario, monkeypatch):
    display = pytest.importorskip("IPython.display")
    shown = []

    class Handle:
        def update(self, obj):
            shown[-1].append(obj.data)

    def fake_display(obj, display_id=False):
        assert display_id is True
        shown.append([obj.data])
        return Handle()

    monkeypatch.setattr(display, "display", fake_display)
    sim = Simulation(short(mh_scenario, 3600.0, seed=1), runtime="local")
    sim.run(until=900)
    sim.run(until=1800, live=True)  # a view that starts from the tables so far
    assert len(shown) == 1
    cycles_run = 3  # at 900 s, 1200 s and 1500 s: the one at 1800 s runs at the next step
    assert len(shown[0]) == 1 + cycles_run + 1  # first draw, one per cycle, the final draw
    last = sim.metrics[sim.metrics["agent"] == "market-hunter"].iloc[-1]
    html = shown[0][-1]
    row = html.split("<tr><td>market-hunter</td>")[1].split("</tr>")[0]
    assert row.endswith(f"<td>{last['decision_count']:.0f}</td>")
    assert "t = 1800 s of 3600 s" in html
    sim.run(live=True)
    assert len(shown) == 2 and "t = 3600 s of 3600 s" in shown[1][-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
def test_cli_serve_dashboard_in_headless_chromium(tmp_path):
    """``swarmopt run --serve PORT --realtime``: the state is live during the
    run; after it, Chromium renders the dashboard, whose DOM shows every agent
    with the decision count of its last window in the run's own metrics table
    and the optimizer's latest decisions from its events table; Ctrl-C stops
    the server with exit code 0."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium chromium-driver); .ci/run installs it")
    port, out = _free_port(), tmp_path / "run"
    # PYTHONFAULTHANDLER: a served run that does not stop is aborted with every thread's stack on stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONFAULTHANDLER="1")
    proc = subprocess.Popen([sys.executable, "-m", "swarmopt", "run", str(MH_SCENARIO), "--runtime", "local",
                             "--seed", "1", "--duration", "3600", "--realtime", "1200", "--out", str(out),
                             "--serve", str(port), "--log-format", "plain"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            # Ctrl-C at a terminal: a shell starts background jobs with SIGINT ignored, and a Python
                            # started so never turns SIGINT into KeyboardInterrupt
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen_during: list[float] = []
        deadline = time.monotonic() + 90
        while not (out / "summary.json").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the run did not finish in 90 s"
            try:
                now_s = json.loads(get(f"http://127.0.0.1:{port}/api/state")[2])["now_s"]
                if 0 < now_s < 3600:
                    seen_during.append(now_s)
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet
            time.sleep(0.1)
        assert len(set(seen_during)) >= 2, "the state should advance while the run goes on (--realtime 1200: 3 s)"
        profile = tmp_path / "chromium-profile"
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                              "--dump-dom", f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        html = dom.stdout
        print(f"chromium rendered {len(html)} characters of DOM")
        metrics = pd.read_parquet(out / "metrics.parquet")
        for agent, g in metrics.groupby("agent"):
            n = int(g.iloc[-1]["decision_count"])
            cell = f'data-metric="decision_count" data-value="{n}">{n}</td>'
            assert f'data-agent="{agent}"' in html and cell in html, agent
            print(f"  {agent}: decisions in the last window {n} (rendered)")
        assert "(finished)" in html and 'class="live">live<' in html
        events = pd.read_parquet(out / "events.parquet")
        decisions = events[events["event"].isin(DECISION_EVENTS)]
        rows = html.count('<tr data-event="')
        assert len(decisions) >= 2 and rows == min(12, len(decisions))
        assert html.split('<tr data-event="')[1].startswith(decisions.iloc[-1]["event"])
        print(f"  optimizer decisions shown: {rows}, latest {decisions.iloc[-1]['event']}")
        # the run directory is written before the runtime shuts down: wait for the summary on stdout, which
        # comes once run_scenario has returned and the server alone keeps going
        assert any(line.startswith("run directory:") for line in proc.stdout)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            proc.wait(timeout=30)
            pytest.fail(f"the served run did not stop within 30 s of SIGINT; its threads:\n"
                        f"{proc.stderr.read()[-6000:]}")
    assert rc == 0, proc.stderr.read()[-2000:]
