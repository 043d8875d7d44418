"""A Ctrl-C at any moment — start-up, run, shutdown, writing — leaves a readable run directory with an honest
status, or, if nothing ran, nothing and no claim that results were kept."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from swarmopt import spool
from swarmopt.cli import app
from swarmopt.files import atomic_path, write_text_atomic
from swarmopt.runtime.driver import Driver
from swarmopt.runtime.local import LocalBackend

from conftest import MH_SCENARIO


def ctrl_c(*_args, **_kwargs):
    raise KeyboardInterrupt


def run_cli(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(MH_SCENARIO), "--runtime", "local", "--duration", "1200",
                                   "--out", str(out)])
    return res, out


def summary(out) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_during_start_up_nothing_is_written_or_claimed(tmp_path, monkeypatch):
    monkeypatch.setattr(Driver, "start", classmethod(ctrl_c))
    res, out = run_cli(tmp_path)
    assert res.exit_code == 130
    assert "no run directory was written" in res.output and not out.exists()


def test_during_the_run_what_ran_is_kept_as_interrupted(tmp_path, monkeypatch):
    advance = Driver.advance
    calls = {"n": 0}

    def interrupt_at_600s(self):
        calls["n"] += 1
        if self.now >= 600:
            raise KeyboardInterrupt
        advance(self)

    monkeypatch.setattr(Driver, "advance", interrupt_at_600s)
    res, out = run_cli(tmp_path)
    assert res.exit_code == 130 and "status interrupted" in res.output
    s = summary(out)
    # between cycles a window closes one tick after its end, once its review answers are back (sim.review):
    # the ticks up to 600 s (60 s each) closed the windows up to 480 s
    assert s["status"] == "interrupted" and s["error"] == "interrupted at 600s" and s["windows"] == 8
    assert len(pd.read_parquet(out / "metrics.parquet")) == 8 * 5


def test_an_interrupted_streamed_run_keeps_what_it_wrote_out_and_what_it_held(tmp_path, monkeypatch):
    monkeypatch.setattr(spool, "CHUNK_ROWS", 20)  # a part every cycle or so
    advance = Driver.advance

    def interrupt_at_900s(self):
        if self.now >= 900:
            assert (tmp_path / "run" / "parts" / "metrics").is_dir()  # written out while it ran
            raise KeyboardInterrupt
        advance(self)

    monkeypatch.setattr(Driver, "advance", interrupt_at_900s)
    res, out = run_cli(tmp_path)
    assert res.exit_code == 130 and "status interrupted" in res.output
    s = summary(out)
    # windows up to 780 s: between cycles a window closes one tick after its end (review answers, sim.review)
    assert s["status"] == "interrupted" and s["windows"] == 13
    assert len(pd.read_parquet(out / "metrics.parquet")) == 13 * 5  # the parts and the rows held, merged
    assert not (out / "parts").exists()


def test_during_shutdown_a_finished_run_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(LocalBackend, "close", ctrl_c)
    res, out = run_cli(tmp_path)
    assert res.exit_code == 130 and "the run had finished" in res.output
    assert summary(out)["status"] == "completed" and summary(out)["windows"] == 20


def test_during_writing_no_file_is_half_written(tmp_path, monkeypatch):
    _, out = run_cli(tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(pd.DataFrame, "to_parquet", ctrl_c)
    res = CliRunner().invoke(app, ["run", str(MH_SCENARIO), "--runtime", "local", "--duration", "600", "--out",
                                   str(out)])
    assert res.exit_code == 130 and "no run directory was written" in res.output
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before)  # no temporary file left behind
    assert after["metrics.parquet"] == before["metrics.parquet"]


def test_atomic_path_keeps_the_old_file_on_an_interrupt(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
