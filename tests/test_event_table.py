"""The events table: its documented schema, its types, its rows."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from swarmopt import Simulation
from swarmopt.event_table import SCHEMA, events_frame, split_value

from conftest import ROOT, short


@pytest.fixture(scope="module")
def sim(mh_scenario):
    s = Simulation(short(mh_scenario, 5400), seed=1)
    s.run()
    return s


def test_columns_and_types_follow_the_schema(sim):
    ev = sim.events
    assert list(ev.columns[:len(SCHEMA)]) == [c.name for c in SCHEMA]
    assert {c.name: str(ev[c.name].dtype) for c in SCHEMA} == {c.name: c.dtype for c in SCHEMA}
    for c in SCHEMA:
        if c.dtype == "string":
            values = ev[c.name].dropna()
            assert not values.isin(["", "nan", "None", "NaN"]).any(), c.name


def test_rows_are_the_emitted_events_in_order(sim):
    raw = sim._sink.event_rows
    ev = sim.events
    assert list(ev["event"]) == [r["event"] for r in raw] and list(ev["t_s"]) == [r["t_s"] for r in raw]
    assert {"cycle.started", "bottleneck.detected", "knob.applied", "optimization.measured"} <= set(ev["event"])


def test_knob_values_are_numbers_and_every_applied_change_names_its_strategy(sim):
    ev = sim.events
    applied = ev[ev["event"] == "knob.applied"]
    # a value is a number (a boolean as 1/0, its text beside), only a tier name is text alone
    assert len(applied) >= 3
    for side in ("old", "new"):
        number, text = applied[f"{side}_value"], applied[f"{side}_text"]
        assert (number.notna() | text.notna()).all() and (number.isna() == applied["knob"].eq("model_tier")).all()
    assert applied["strategy_id"].notna().all() and applied["kind"].notna().all()
    scheduled = ev[ev["event"] == "optimization.scheduled"].set_index("strategy_id")["kind"]
    for r in applied.itertuples():
        assert r.kind == scheduled[r.strategy_id]
        assert r.ref in (r.strategy_id, f"rollback:{r.strategy_id}", f"restore:{r.strategy_id}")
    hunter = applied[applied["knob"] == "cache_ttl_s.data_source"].iloc[0]  # seed 1's second change
    assert (hunter.old_value, hunter.new_value) == (60, 960) and pd.isna(hunter.old_text)  # a TTL step of 16x
    auto = ev[ev["event"].str.startswith("autonomy.")]
    assert auto["new_value"].between(0, 1).all()


def test_split_value():
    assert split_value(8) == (8.0, None)
    assert split_value(True) == (1.0, "true") and split_value(False) == (0.0, "false")
    number, text = split_value("fast")
    assert math.isnan(number) and text == "fast"
    assert split_value([4, True])[1] == "4;true"
    assert math.isnan(split_value(None)[0]) and split_value(math.nan)[1] is None


def test_empty_and_unknown_keys():
    empty = events_frame([])
    assert list(empty.columns) == [c.name for c in SCHEMA] and empty.empty
    ev = events_frame([{"t_s": 0.0, "event": "x.custom", "detail": "", "extra": 3}])
    assert list(ev.columns[-1:]) == ["extra"] and pd.isna(ev.loc[0, "detail"])


def test_parquet_keeps_the_types(sim, tmp_path):
    sim.events.to_parquet(tmp_path / "e.parquet")
    back = pd.read_parquet(tmp_path / "e.parquet")
    pd.testing.assert_frame_equal(back, sim.events)


def test_the_readme_documents_the_schema():
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| (\w+) \| (.+?) \| (.+?) \|$", text, re.M)
    documented = {name: (dtype, meaning, events) for name, dtype, meaning, events in rows}
    for c in SCHEMA:
        assert documented.get(c.name) == (c.dtype, c.meaning, c.events), c.name
