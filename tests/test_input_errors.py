"""Bad input from issue 11: each case the issue lists exits with code 2 and one
clear line (file, field, allowed values), never a traceback; and the loader's
limits (duplicate keys, depth, aliases, encoding, size) one by one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmopt.cli import app
from swarmopt.loader import MAX_FILE_BYTES, InputError, load_profile, load_scenario

from conftest import MH_SCENARIO, ROOT


def cli(*args) -> tuple[int, str, str]:
    """Run the CLI in process: (exit code, stderr, stdout); fails on a traceback."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stderr.strip(), result.stdout


def folder(tmp_path: Path) -> Path:
    """A copy of the shipped scenario and the five profiles in ``tmp_path``."""
    for p in (ROOT / "agents").glob("*.yaml"):
        shutil.copy(p, tmp_path / p.name)
    shutil.copy(MH_SCENARIO, tmp_path / "s.yaml")
    return tmp_path


def edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


def dry_run(path: Path, *options) -> tuple[int, str, str]:
    return cli("run", path, "--dry-run", "--runtime", "local", "--out", path.parent / "out", *options)


SCENARIO_CASES = {  # issue 11's findings on the scenario file: (old, new, what the line must say)
    "load multiplier 1e6": ("optimizer:", "load: {kind: constant, multiplier: 1.0e+6}\noptimizer:",
                            ["load.multiplier", "less than or equal to 100"]),
    "tick_s 0.01": ("tick_s: 60", "tick_s: 0.01", ["tick_s", "greater than or equal to 0.1"]),
    "autonomy rule": ("optimizer:", "orchestrator: {policy: lenient}\noptimizer:",
                      ["orchestrator.policy", "unknown autonomy rule 'lenient'", "allowed: rules, fixed, load_aware"]),
    "autonomy rule path": ("optimizer:", "orchestrator: {policy: 'nowhere.rules:lenient'}\noptimizer:",
                           ["orchestrator.policy", "cannot import 'nowhere.rules:lenient'"]),
    "duration .inf": ("duration_s: 7200", "duration_s: .inf", ["duration_s", "finite number"]),
    "faults: 5": ("faults:\n", "faults: 5\nfaultz:\n", ["faults", "valid list", "(got 5)"]),
    "target a list": ("target: market-hunter, tool: data_source, at_s: 1800, factor: 4.0",
                      "target: [market-hunter], tool: data_source, at_s: 1800, factor: 4.0",
                      ["faults.0", "target", "valid string"]),
    "count 100000": ("  - market_hunter.yaml", "  - {profile: market_hunter.yaml, count: 100000}",
                     ["agents.1", "count", "less than or equal to 1000"]),
    "over-long profile name": ("  - market_hunter.yaml", "  - " + "a" * 5000 + ".yaml",
                               ["agents: profile 'aaaa", "not a usable path"]),
    "duplicate key": ("seed: 1\n", "seed: 1\nseed: 2\n", ["line 11", "duplicate key 'seed'", "each key once"]),
    "deep nesting": ("optimizer:", "x: " + "[" * 100 + "]" * 100 + "\noptimizer:", ["nested deeper than 32"]),
    "very deep nesting": ("optimizer:", "x: " + "[" * 5000 + "]" * 5000 + "\noptimizer:",
                          ["nested deeper than", "allowed: at most 32"]),
    "huge seed": ("seed: 1", "seed: 18446744073709551616", ["seed", "less than or equal to 9223372036854775807"]),
    "path in the name": ("name: market_hunter_degradation", "name: ../../etc/x", ["name", "pattern", "../../etc/x"]),
    "unknown field": ("tick_s: 60", "tik_s: 60", ["tik_s", "Extra inputs", "allowed: tick_s"]),
    "wrong type": ("tick_s: 60", "tick_s: fast", ["tick_s", "valid number", "allowed: a number >= 0.1 and <= 3,600"]),
}


@pytest.mark.parametrize("case", sorted(SCENARIO_CASES))
def test_bad_scenario_exits_2_with_one_line_naming_file_field_and_allowed(tmp_path, case):
    old, new, expected = SCENARIO_CASES[case]
    path = edit(folder(tmp_path) / "s.yaml", old, new)
    code, err, _ = dry_run(path)
    assert code == 2 and len(err.splitlines()) == 1 and len(err) <= 300, err
    assert err.startswith(f"error: {path}: "), err
    for part in expected:
        assert part in err, (part, err)


PROFILE_CASES = {
    "rate 10000": ("base_rate_per_s: 1.2", "base_rate_per_s: 10000", ["base_rate_per_s", "less than or equal to 1000"]),
    "tokens 1e30": ("prompt_tokens: 1800", "prompt_tokens: 1.0e+30",
                    ["prompt_tokens", "allowed: an integer >= 1 and <= 1,000,000"]),
    "tool keyspace": ("keyspace: 3000", "keyspace: 100000000", ["tools.0.keyspace", "1000000"]),
    "review workers 0": ("review_ms_median: 1500", "review_ms_median: 1500\nreview: {workers: 0}",
                         ["review.workers", "greater than or equal to 1"]),
}


@pytest.mark.parametrize("case", sorted(PROFILE_CASES))
def test_bad_profile_names_the_profile_file(tmp_path, case):
    old, new, expected = PROFILE_CASES[case]
    profile = edit(folder(tmp_path) / "market_hunter.yaml", old, new)
    code, err, _ = dry_run(tmp_path / "s.yaml")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: {profile}: "), err
    for part in expected:
        assert part in err, (part, err)


def test_duration_option_inf_and_bad_realtime(tmp_path):
    code, err, _ = dry_run(folder(tmp_path) / "s.yaml", "--duration", "inf")
    assert code == 2 and "options seed/duration_s: duration_s: Input should be a finite number" in err
    code, err, _ = dry_run(tmp_path / "s.yaml", "--realtime", "nan")
    assert code == 2 and "--realtime" in err


def test_non_utf8_file(tmp_path):
    path = folder(tmp_path) / "s.yaml"
    path.write_bytes(path.read_bytes().replace(b"The source design", b"The source d\xe9sign"))
    code, err, _ = dry_run(path)
    assert code == 2 and "not UTF-8 text (byte 0xe9 at offset" in err and "allowed: UTF-8" in err


def test_alias_bomb_is_refused_in_one_short_line(tmp_path):
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = folder(tmp_path) / "s.yaml"
    path.write_text("\n".join(levels) + "\ndescription: *a8\n" + MH_SCENARIO.read_text().split("\n", 1)[1])
    assert path.stat().st_size < 2000  # expands to 9**9 = 387 million strings
    code, err, _ = dry_run(path)
    assert code == 2 and len(err) <= 300 and "more than 100,000 values once aliases are expanded" in err, err


def test_mapping_merge_may_override_but_a_repeated_key_may_not(tmp_path):
    path = tmp_path / "p.yaml"
    base = (ROOT / "agents" / "market_hunter.yaml").read_text()
    path.write_text(base + "action_mix: &mix {simple: 0.3, complex: 0.2}\n")
    assert load_profile(path).action_mix.simple == 0.3
    path.write_text(base.replace("knobs:\n", "x-defaults: &d {max_retries: 2, timeout_s: 8}\nknobs:\n  <<: *d\n", 1)
                    .replace("  max_retries: 0", "  max_retries: 1"))
    with pytest.raises(InputError, match="x-defaults"):  # the merge itself is fine; the anchor holder is an extra field
        load_profile(path)
    path.write_text(base.replace("knobs:\n", "knobs:\n  timeout_s: 5\n", 1))
    with pytest.raises(InputError, match="duplicate key 'timeout_s'"):
        load_profile(path)


def test_cyclic_alias_large_file_and_huge_integer(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(MH_SCENARIO.read_text() + "loop: &loop [*loop]\n")
    with pytest.raises(InputError, match="refers to its own anchor"):
        load_scenario(path)
    path.write_text(MH_SCENARIO.read_text() + "#" * MAX_FILE_BYTES)
    with pytest.raises(InputError, match="larger than 1,048,576 bytes"):
        load_scenario(path)
    path.write_text(MH_SCENARIO.read_text().replace("seed: 1", "seed: " + "9" * 5000))
    with pytest.raises(InputError, match="not valid YAML .*4300 digits"):
        load_scenario(path)


def test_not_a_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_scenario(tmp_path)
    with pytest.raises(InputError, match="not a regular file"):
        load_scenario("/dev/zero")
