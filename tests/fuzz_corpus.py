"""A seeded corpus of mutated scenario and profile files, for the input fuzz test.

Each case is a folder holding a scenario and the five agent profiles it uses
(the shipped files), one or more of which are mutated: 1 to 3 mutations, each
either on the parsed data (delete, retype or rescale a field anywhere in the
tree, wrap a scalar in a list or a mapping, nest it deeply, add an unknown or
over-long key, break the population counts, the faults, the time grid, the
agent paths) or on the text (duplicate a key, an alias bomb or a cyclic alias,
nesting thousands of levels deep, bytes that are not UTF-8, a file over 1 MiB,
truncation, stray YAML syntax, tags, several documents). The same ``seed`` and
index always give the same case.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
PROFILES = sorted((ROOT / "agents").glob("*.yaml"))

NUMBERS = [0, -1, -0.5, 1e-300, 0.05, 0.01, 1.5, 7, 100000, 1e6, 1e9, 1e30, 1e308, -1e308, 2**63, 2**64, 10**50,
           math.inf, -math.inf, math.nan]
OTHERS = [True, False, None, "", "x", "a" * 5000, "1e6", "inf", "NaN", "-1", [], {}, [1, 2], {"a": 1}, ["x", "y"],
          "market-hunter", "../agents/market_hunter.yaml"]
PATH_TRICKS = ["/etc/passwd", "/etc/hostname", "../../../../etc/passwd", "../agents/market_hunter.yaml",
               "../scenarios/surge.yaml", "../" * 40 + "etc/passwd", "a" * 5000 + ".yaml", "x" * 300, "bad\x00name",
               "/dev/zero", "/dev/stdin", "/proc/self/environ", "~/.bashrc", ".", "..", "/", "", "sub/../../x.yaml",
               "market_hunter", "./market_hunter.yaml", "%2e%2e/etc/passwd", "C:\\Windows\\win.ini"]
YAML_JUNK = [":", "- ", "[", "]", "{", "}", "&a ", "*a ", "!", "%", "@", "`", "\t", "\x00", "\x1b", "\x85", "'", '"',
             "? ", "|", ">", "#", "---\n", "...\n", "\ufeff", "\u2028"]


@dataclass
class Case:
    """One corpus entry: ``files`` (name -> bytes) written into one folder;
    ``scenario`` is the name of the scenario file among them; ``mutations``
    says what was done, for the failure report."""

    index: int
    scenario: str
    files: dict[str, bytes]
    mutations: list[str] = field(default_factory=list)

    def write(self, folder: Path) -> Path:
        """Write the files into ``folder`` (created) and return the scenario's path."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        return folder / self.scenario


def _paths(node, prefix=()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a parsed YAML tree, the root excluded."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _get(node, path):
    for k in path:
        node = node[k]
    return node


def _set(root, path, value) -> None:
    _get(root, path[:-1])[path[-1]] = value


def _delete(root, path) -> None:
    parent = _get(root, path[:-1])
    del parent[path[-1]]


def _nest(value, depth: int, rng: random.Random):
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value


# --------------------------------------------------------------- data mutations
def _data_mutation(data, rng: random.Random, is_scenario: bool) -> str:
    """Mutate the parsed tree ``data`` in place; returns a description."""
    paths = _paths(data)
    op = rng.choice(["delete", "number", "other", "list", "dict", "scale", "nest", "unknown", "long_key",
                     "nudge", "nudge", "nudge", "special", "special", "special"])
    if op == "special":
        return (_scenario_special if is_scenario else _profile_special)(data, rng)
    if not paths:
        data["unknown_field"] = 1
        return "unknown on empty"
    path = rng.choice(paths)
    value = _get(data, path)
    if op == "delete":
        _delete(data, path)
    elif op == "number":
        _set(data, path, rng.choice(NUMBERS))
    elif op == "other":
        _set(data, path, rng.choice(OTHERS))
    elif op == "list":
        _set(data, path, [value])
    elif op == "dict":
        _set(data, path, {"value": value})
    elif op == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
        _set(data, path, value * rng.choice([-1, 0, 10, 1000, 1e6, 1e12]))
    elif op == "nudge" and isinstance(value, (int, float)) and not isinstance(value, bool):
        # often still valid: the valid cases are then run, so odd but allowed values get simulated
        nudged = value * rng.choice([0.25, 0.5, 0.9, 1.1, 2, 4])
        _set(data, path, round(nudged) if isinstance(value, int) else nudged)
    elif op == "nest":
        _set(data, path, _nest(value, rng.choice([5, 25, 40]), rng))
    elif op == "unknown":
        target = _get(data, path[:-1])
        if isinstance(target, dict):
            target[rng.choice(["colour", "duration", "tick", "Name", "agent"])] = 1
    elif op == "long_key":
        target = _get(data, path[:-1])
        if isinstance(target, dict):
            target["k" * rng.choice([100, 5000])] = "v"
    return f"{op} at {'.'.join(map(str, path))[:80]}"


def _scenario_special(data, rng: random.Random) -> str:
    """Scenario-specific breakage: counts, faults, time grid, load, agent paths, names."""
    op = rng.randrange(12)
    agents = data.get("agents") if isinstance(data.get("agents"), list) else None
    if op == 0 and agents:
        i = rng.randrange(len(agents))
        ref = agents[i]["profile"] if isinstance(agents[i], dict) else agents[i]
        agents[i] = {"profile": ref, "count": rng.choice([0, -1, 2, 1000, 1001, 100000, 1e6, "3", 2.5, None, [2]])}
        return f"count on agents.{i}"
    if op == 1 and agents:
        i = rng.randrange(len(agents))
        agents[i] = rng.choice(PATH_TRICKS)
        return f"path trick on agents.{i}: {agents[i][:40]!r}"
    if op == 2:
        data["faults"] = rng.choice([5, "x", None, [5], [None], {"kind": "latency"}, [[1, 2]], True])
        return f"faults = {data['faults']!r}"
    if op == 3:
        fault = {"kind": rng.choice(["latency", "load_surge", "error_spike", "crash", "coordination_storm",
                                     "memory_leak", "price_change", "cache_bypass", "meteor", 5, None]),
                 "target": rng.choice(["market-hunter", ["market-hunter"], {"a": 1}, 5, None, "nobody", "x" * 500]),
                 "at_s": rng.choice([0, 60, -1, 1e308, math.inf, "now"]),
                 "factor": rng.choice([2, 1e6, 0, -1, math.nan]), "tool": rng.choice(["data_source", None, 5, "fax"]),
                 "error_rate": rng.choice([0.5, 2, -1]), "messages_per_s": rng.choice([10, 1e6, 1e9]),
                 "mb_per_min": rng.choice([10, 1e300]), "duration_s": rng.choice([60, None, 0, 1e300])}
        for k in rng.sample(sorted(fault), rng.randrange(3)):
            del fault[k]
        data.setdefault("faults", [])
        if isinstance(data["faults"], list):
            data["faults"].append(fault)
        return f"fault {fault.get('kind')!r} target {str(fault.get('target'))[:20]!r}"
    if op == 4:
        key = rng.choice(["tick_s", "window_s", "duration_s"])
        data[key] = rng.choice([0.01, 0.001, 0, -60, 0.1, 1, 7, 45, 1e9, 1e300, math.inf, math.nan, "60", "1e2",
                                [60], 86400 * 366])
        return f"{key} = {data[key]!r}"
    if op == 5:
        data["load"] = {"kind": rng.choice(["constant", "diurnal", "surge", "ramp", "zigzag"]),
                        rng.choice(["multiplier", "surge_factor", "ramp_to", "period_s", "amplitude", "phase_s"]):
                        rng.choice([1e6, 1e-300, 0, -2, 100, 101, 1e308, math.inf, 0.999, 1])}
        return f"load = {data['load']}"
    if op == 6:
        data["name"] = rng.choice(["../../etc/x", "/tmp/x", "a" * 1000, "", "..", "ok name", "n\nm", 5, None])
        return f"name = {str(data['name'])[:30]!r}"
    if op == 7:
        data["seed"] = rng.choice([-1, 2**63, 2**64, 10**30, 1.5, "1", None, math.inf])
        return f"seed = {data['seed']!r}"
    if op == 8 and agents:
        for a in agents:
            if isinstance(a, str):
                agents[agents.index(a)] = {"profile": a, "count": rng.choice([400, 500, 999])}
        return "large populations"
    if op == 9:
        data["agents"] = rng.choice([[], None, "market_hunter.yaml", 5, [{}], [{"profile": {"id": "x"}}],
                                     ["market_hunter.yaml"] * 3000])
        return "agents replaced"
    if op == 10:
        data.setdefault("optimizer", {})
        if isinstance(data["optimizer"], dict):
            key = rng.choice(["cycle_s", "measure_windows", "policy", "alpha", "long_windows", "min_samples"])
            data["optimizer"][key] = rng.choice([0, -1, 1e-9, 1e12, 1e308, "rules", "magic", 7, 1e6])
            return f"optimizer.{key}"
    data["models"] = rng.choice([{}, {"fast": 1}, None, {"turbo": {}},
                                 {t: {"latency_ms_median": rng.choice([1e308, 1e-300, 1e7]), "latency_sigma": 3,
                                      "quality": 1, "confidence_mean": 0.5, "input_usd_per_mtok": 1e300,
                                      "output_usd_per_mtok": 1} for t in ("fast", "standard", "strong")}])
    return "models replaced"


def _profile_special(data, rng: random.Random) -> str:
    """Profile-specific breakage: rates, tokens, tools, links, knobs."""
    op = rng.randrange(7)
    if op == 0:
        key = rng.choice(["base_rate_per_s", "prompt_tokens", "output_tokens", "resources", "review_ms_median",
                          "network_latency_ms", "memory_capacity_mb", "coordination_deadline_s"])
        data[key] = rng.choice([1e30, 1e6, 10000, 1000, 1001, 0, -1, 1e308, math.inf, math.nan, "many", 2**64])
        return f"{key} = {data[key]!r}"
    if op == 1:
        tools = data.get("tools")
        if isinstance(tools, list) and tools and isinstance(tools[0], dict):
            key = rng.choice(["keyspace", "latency_ms_median", "zipf_s", "error_rate", "name", "hit_latency_ms"])
            tools[0][key] = rng.choice([10**7, 1e308, 0, -1, "Bad Name", "dup", math.nan, 1e6])
            return f"tools.0.{key}"
        data["tools"] = [{"name": f"t{i}", "latency_ms_median": 10} for i in range(rng.choice([2, 33, 200]))]
        return "many tools"
    if op == 2:
        data["downstream"] = rng.choice([[{"to": "nobody", "probability": 0.5}], [{"to": "market-analyzer",
                                         "probability": 2}], [{"to": ["x"]}], "x", [{"to": "market-hunter",
                                         "probability": 1.0}] * 100])
        return "downstream replaced"
    if op == 3:
        knobs = data.setdefault("knobs", {})
        if isinstance(knobs, dict):
            key = rng.choice(["max_concurrency", "timeout_s", "max_retries", "model_tier", "cache_ttl_s",
                              "message_batch_size", "circuit_breaker"])
            knobs[key] = rng.choice([0, 10**6, -1, "turbo", {"nope": 5}, {"data_source": 1e300}, math.inf, [4],
                                     {"enabled": "maybe"}])
            return f"knobs.{key}"
    if op == 4:
        data["id"] = rng.choice(["Market Hunter", "x" * 100, "", "market-hunter", "strategic-orchestrator", 5])
        return f"id = {str(data['id'])[:20]!r}"
    if op == 5:
        data["action_mix"] = {"simple": rng.choice([0.9, 2, -1]), "complex": rng.choice([0.5, math.nan])}
        return "action_mix"
    data["latency_distribution"] = rng.choice(["pareto", 5, None, "exponential", "deterministic"])
    return f"latency_distribution = {data['latency_distribution']!r}"


# --------------------------------------------------------------- text mutations
def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _text_mutation(text: str, rng: random.Random) -> tuple[bytes, str]:
    """Mutate the YAML text; returns the new bytes and a description."""
    lines = text.splitlines(keepends=True)
    op = rng.randrange(16)
    if op == 0:  # duplicate a key line (top level or nested)
        keyed = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith(("-", "#"))]
        i = rng.choice(keyed)
        lines.insert(i + 1, lines[i] if lines[i].endswith("\n") else lines[i] + "\n")
        return "".join(lines).encode(), f"duplicate line {i + 1}"
    if op == 1:
        return (_bomb(rng.choice([4, 9, 12])) + text).encode(), "alias bomb"
    if op == 2:
        return (text + "loop: &loop [*loop]\n").encode(), "cyclic alias"
    if op == 3:
        depth = rng.choice([40, 200, 5000, 100000])
        return (text + "deep: " + "[" * depth + "]" * depth + "\n").encode(), f"text nesting {depth}"
    if op == 4:
        pos = rng.randrange(len(text) + 1)
        raw = text.encode()
        return raw[:pos] + rng.choice([b"\xff\xfe", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]) \
            + raw[pos:], "bad UTF-8"
    if op == 5:
        return text.replace("a", "\u00e4").encode(rng.choice(["latin-1", "utf-16", "utf-32"])), "other encoding"
    if op == 6:
        return (text + "# " + "x" * (1 << 20) + "\n").encode(), "over 1 MiB"
    if op == 7:
        return text.encode()[:rng.randrange(len(text))], "truncated"
    if op == 8:
        pos = rng.randrange(len(text) + 1)
        junk = rng.choice(YAML_JUNK)
        return (text[:pos] + junk + text[pos:]).encode("utf-8", "surrogatepass"), f"junk {junk!r}"
    if op == 9:
        tag = rng.choice(["!!python/object/apply:os.system ['true']", "!!binary aGVsbG8=", "!!set {a, b}",
                          "2001-12-14t21:59:43.10-05:00", "!!float 1e999", "!!int 0x7fffffffffffffffffff",
                          "!custom 5", "!!str", "!!map [1]", "!!seq {a: 1}"])
        key = rng.choice(["description", "seed", "duration_s", "name", "base_rate_per_s", "id"])
        return "".join(line if not line.startswith(key + ":") else f"{key}: {tag}\n" for line in lines).encode() \
            + f"\n{key}x: {tag}\n".encode(), f"tag {tag[:20]}"
    if op == 10:
        return rng.choice([b"", b"# only a comment\n", b"- a\n- b\n", b"42\n", b"~\n", b"'x'\n",
                           (text + "---\n" + text).encode(), b"\xef\xbb\xbf" + text.encode()]), "document shape"
    if op == 11:
        num = rng.choice(["1e6", ".inf", "-.inf", ".nan", "0x1F", "0o17", "1_000", "+12", "12:30:00", "9" * 5000,
                          "1.0e+400", "-0.0", "0b101", "1e-400"])
        key = rng.choice(["duration_s", "tick_s", "window_s", "seed", "base_rate_per_s", "prompt_tokens"])
        return "".join(line if not line.startswith(key + ":") else f"{key}: {num}\n" for line in lines).encode(), \
            f"{key}: {num[:20]}"
    if op == 12:
        key = "k" * rng.choice([1000, 70000])
        return (text + f"{key}: 1\n").encode(), "long key"
    if op == 13:
        return (text + "merge: &m {a: 1}\nuse: {<<: *m, a: 2}\n").encode(), "merge key"
    if op == 14:
        return text.replace("  ", "\t", 1).encode(), "tab indentation"
    anchors = "".join(f"x{i}: &x{i} {i}\n" for i in range(2000))
    return (text + anchors + "y: [" + ", ".join(f"*x{i}" for i in range(2000)) + "]\n").encode(), "many aliases"


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser, the same data ten times faster


def _dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10_000)


def make_case(index: int, seed: int = 0) -> Case:
    """Case number ``index`` of the corpus with ``seed``: a scenario and the
    five profiles, 1 to 3 of those files mutated, 1 or 2 mutations each (a text
    mutation ends a file's turn)."""
    rng = random.Random(f"{seed}:{index}")
    scenario = rng.choice(SCENARIOS)
    texts = {p.name: p.read_text() for p in PROFILES}
    texts[scenario.name] = scenario.read_text()
    files = {name: t.encode() for name, t in texts.items()}
    case = Case(index, scenario.name, files)
    for _ in range(rng.choice([1, 1, 2, 3])):
        name = scenario.name if rng.random() < 0.6 else rng.choice([p.name for p in PROFILES])
        text = texts[name]
        for _ in range(rng.choice([1, 1, 2])):
            data = yaml.load(text, Loader=LOADER)
            if rng.random() < 0.6 and isinstance(data, dict):
                what = _data_mutation(data, rng, name == scenario.name)
                text = _dump(data)
                files[name] = text.encode()
            else:  # a text mutation is the file's last (the result may not even parse)
                files[name], what = _text_mutation(text, rng)
                case.mutations.append(f"{name}: {what}")
                break
            case.mutations.append(f"{name}: {what}")
        texts[name] = text
    return case
