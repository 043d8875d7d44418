"""Bad input never gives a traceback: thousands of mutated scenario and profile files
(tests/fuzz_corpus.py) through the command line, in process (typer's CliRunner).

Every case must end with exit code 0 or 2 within a few seconds; an exit 2 prints
exactly one line of at most 300 characters that names one of the case's files.
Each case is validated with ``swarmopt run --dry-run`` (loading, validation,
resource estimate, run-directory check); the valid ones are then run for one
window on the local runtime, so that values the schema accepts are shown to
run as well. The default test run takes a few hundred cases; the ``slow`` one
takes 2,400.
"""

from __future__ import annotations

import functools
import signal
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.testing
from fuzz_corpus import Case, make_case
from typer.testing import CliRunner

from swarmopt.cli import app
from swarmopt.loader import load_scenario

CASE_TIMEOUT_S = 20   # a hang; a dry run takes milliseconds, a one-window run well under a second


@pytest.fixture(autouse=True, scope="module")
def command_built_once():
    """typer's CliRunner builds the click command anew on every invoke (about 30 ms, a third of a case); the
    command line under test is the same, built once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(typer.testing, "_get_command", functools.cache(typer.testing._get_command))
        yield


class HangError(Exception):
    """A case ran past CASE_TIMEOUT_S."""


@contextmanager
def deadline(seconds: int):
    def expire(*_):
        raise HangError

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Outcome:
    case: Case
    stage: str            # "dry-run" or "run"
    exit_code: int | None
    message: str          # stderr of an exit 2, or what went wrong
    problem: str | None   # None if the case behaved


def invoke(args: list[str]) -> tuple[int | None, str, BaseException | None]:
    result = CliRunner().invoke(app, args)
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stderr, exc


def check_case(case: Case, folder: Path, run_valid: bool) -> Outcome:
    """Dry-run the case, then (if valid and ``run_valid``) run it for one window."""
    path = case.write(folder)
    files = [str(folder / name) for name in case.files]
    out = folder / "out"
    stages = [("dry-run", ["run", str(path), "--dry-run", "--runtime", "local", "--out", str(out)])]
    for stage, args in stages:
        try:
            with deadline(CASE_TIMEOUT_S):
                code, err, exc = invoke(args)
                if stage == "dry-run" and code == 0 and run_valid:
                    window = load_scenario(path).window_s
                    stages.append(("run", ["run", str(path), "--runtime", "local", "--out", str(out),
                                           "--duration", repr(window), "--log-format", "plain"]))
        except HangError:
            return Outcome(case, stage, None, "", f"no answer within {CASE_TIMEOUT_S} s")
        if exc is not None:
            return Outcome(case, stage, code, repr(exc)[:300], f"traceback: {type(exc).__name__}")
        if code not in (0, 2):
            return Outcome(case, stage, code, err, f"exit code {code}")
        if code == 2:
            lines = err.strip().splitlines()
            line = lines[0] if lines else ""
            if len(lines) != 1:
                return Outcome(case, stage, code, err[:2000], f"{len(lines)} lines")
            if len(line) > 300:
                return Outcome(case, stage, code, line, f"{len(line)} characters")
            if not any(f in line for f in files):
                return Outcome(case, stage, code, line, "names none of the case's files")
            return Outcome(case, stage, code, line, None)
    return Outcome(case, stages[-1][0], 0, "", None)


def fuzz(indices: range, tmp_path: Path, run_valid: bool) -> list[Outcome]:
    outcomes = [check_case(make_case(i), tmp_path / f"case{i}", run_valid) for i in indices]
    bad = [o for o in outcomes if o.problem]
    report = "\n".join(f"case {o.case.index} ({'; '.join(o.case.mutations)}) at {o.stage}: {o.problem}: "
                       f"{o.message[:400]!r}" for o in bad[:20])
    assert not bad, f"{len(bad)} of {len(outcomes)} cases misbehaved:\n{report}"
    return outcomes


def summary(outcomes: list[Outcome], seconds: float) -> str:
    codes = Counter((o.stage, o.exit_code) for o in outcomes)
    longest = max((len(o.message) for o in outcomes), default=0)
    return (f"{len(outcomes)} cases in {seconds:.0f} s: " + ", ".join(f"{s} exit {c}: {n}" for (s, c), n in
                                                                      sorted(codes.items())) +
            f"; longest message {longest} characters; 0 tracebacks, 0 hangs")


def test_fuzz_corpus_is_deterministic_and_varied():
    a, b = make_case(7), make_case(7)
    assert a.files == b.files and a.mutations == b.mutations
    kinds = Counter(m.split(": ", 1)[1].split(" ")[0] for i in range(150) for m in make_case(i).mutations)
    assert len(kinds) > 40, kinds  # many different mutations, not one repeated


def test_mutated_files_exit_0_or_2_with_one_short_line(tmp_path):
    t = time.perf_counter()
    outcomes = fuzz(range(300), tmp_path, run_valid=False)
    codes = Counter(o.exit_code for o in outcomes)
    # the corpus exercises both paths: most mutations break a file, some leave it valid
    assert codes[2] > 150 and codes[0] > 20, summary(outcomes, time.perf_counter() - t)


@pytest.mark.slow
def test_mutated_files_full_corpus_and_one_window_runs(tmp_path):
    t = time.perf_counter()
    outcomes = fuzz(range(2400), tmp_path, run_valid=True)
    print(summary(outcomes, time.perf_counter() - t))
    assert sum(o.stage == "run" for o in outcomes) > 200
