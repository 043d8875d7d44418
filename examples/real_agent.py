"""A small real agent, instrumented; the advisor finds its bottleneck and a measured fix.

The Market Hunter answers "scan SYMBOL" requests arriving at random (Poisson,
``--rate`` per second) on a pool of worker threads. Each scan looks the symbol
up in a price feed that really sleeps 250 ms (lognormal) per call, behind a TTL
cache (a dict with expiry times) whose TTL starts at half a second, then makes
a model call (30 ms sleep; tokens counted from the prompt). The SLO is 150 ms.

The advisor sees the response time over the SLO, picks the remedy whose knob it
may set (``cache_ttl_s.price_feed``), applies it at a window boundary, compares
the windows before and after with the canary judge, and keeps the change or
rolls it back. With ``--recommend-only`` it only recommends, with its evidence.

    python examples/real_agent.py                   # apply and measure (about 20 s)
    python examples/real_agent.py --recommend-only  # recommend only (about 10 s)
    python examples/real_agent.py --window 1        # faster, fewer decisions per window
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from swarmopt.advisor import Advisor
from swarmopt.instrument import Telemetry, track

SYMBOLS = [f"sym{i}" for i in range(200)]


class TTLCache:
    """A dict whose entries expire ``ttl_s`` seconds after they were fetched
    (a changed TTL applies to the entries already there)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._data: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, fetch) -> tuple[float, bool]:
        """(value, hit): the cached value if fresh, else ``fetch(key)`` stored now."""
        with self._lock:
            entry = self._data.get(key)
        if entry is not None and time.monotonic() - entry[0] < self.ttl_s:
            return entry[1], True
        value = fetch(key)
        with self._lock:
            self._data[key] = (time.monotonic(), value)
        return value, False


class MarketHunter:
    """The agent: one price-feed lookup and one model call per scan."""

    def __init__(self, telemetry: Telemetry, seed: int) -> None:
        self.telemetry = telemetry
        self.cache = TTLCache(ttl_s=0.5)
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()

    def price_feed(self, symbol: str) -> float:
        with self.lock:
            delay = 0.25 * float(self.rng.lognormal(0.0, 0.3))
        time.sleep(delay)  # the slow upstream API
        return float(sum(map(ord, symbol)) % 997)

    def scan(self, symbol: str, arrived: float) -> str:
        with track(agent="market-hunter", action="scan", queued_at=arrived, session=symbol[:4],
                   telemetry=self.telemetry) as t:
            with t.tool("price_feed") as call:
                price, call.hit = self.cache.get(symbol, self.price_feed)
            prompt = f"You are a market hunter. {symbol} trades at {price}. Is it an opportunity? Answer briefly."
            time.sleep(0.03)  # the model call
            answer = "watch" if price % 2 else "buy"
            t.tokens(input=len(prompt.split()), output=len(answer.split()), model="fast")
            return answer


def traffic(agent: MarketHunter, rate: float, stop: threading.Event, seed: int) -> None:
    """Poisson arrivals of scans with Zipf-popular symbols, served by 16 worker threads."""
    rng = np.random.default_rng(seed + 1)
    weights = 1.0 / np.arange(1, len(SYMBOLS) + 1) ** 1.1
    weights /= weights.sum()
    with ThreadPoolExecutor(max_workers=16) as pool:
        while not stop.is_set():
            time.sleep(float(rng.exponential(1.0 / rate)))
            pool.submit(agent.scan, SYMBOLS[int(rng.choice(len(SYMBOLS), p=weights))], time.monotonic())


def show(e: dict) -> None:
    name = e["event"]
    if name == "bottleneck.detected":
        print(f"{e['t_s']:5.1f}s  bottleneck: {e['detail']}")
    elif name in ("strategy.recommended", "optimization.scheduled"):
        print(f"{e['t_s']:5.1f}s  {name.split('.')[1]}: {e['knob']} {e['old']} -> {e['new']} "
              f"(expected improvement {e['expected_improvement']:.0f}%)")
    elif name in ("knob.applied", "knob.failed"):
        print(f"{e['t_s']:5.1f}s  {name}: {e['knob']} = {e['new']}")
    elif name == "optimization.measured":
        print(f"{e['t_s']:5.1f}s  measured {e['metric']}: {e['before']:.0f} -> {e['after']:.0f} ms "
              f"({e['improvement_pct']:+.0f}%, 95% CI {e['ci_low_pct']:+.0f}% .. {e['ci_high_pct']:+.0f}%; "
              f"{e['tasks_before']} vs {e['tasks_after']} decisions; {e['method']} p = {e['p_value']:.1g}); "
              f"verdict {e['verdict']}: {e['decision']}")
    elif name.startswith("optimization.") and name != "optimization.scheduled":
        print(f"{e['t_s']:5.1f}s  {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window", type=float, default=2.0, help="window length in wall-clock seconds (default 2)")
    ap.add_argument("--rate", type=float, default=25.0, help="scans per second (default 25)")
    ap.add_argument("--recommend-only", action="store_true", help="recommend, change nothing")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    telemetry = Telemetry(window_s=args.window, slo_ms=150)
    agent = MarketHunter(telemetry, args.seed)
    advisor = Advisor(telemetry, cycle_windows=3, config={"long_windows": 3, "measure_windows": 4})
    setter = None if args.recommend_only else (lambda ttl: setattr(agent.cache, "ttl_s", ttl))
    advisor.knob("market-hunter", "cache_ttl_s.price_feed", get=lambda: agent.cache.ttl_s, set=setter)

    stop = threading.Event()
    feeder = threading.Thread(target=traffic, args=(agent, args.rate, stop, args.seed))
    feeder.start()
    shown, deadline = 0, time.monotonic() + 14 * args.window
    wanted = "strategy.recommended" if args.recommend_only else "optimization.measured"
    with advisor:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            events = advisor.event_rows[shown:]
            shown += len(events)
            for e in events:
                show(e)
            if any(e["event"] == wanted for e in events):
                break
    stop.set()
    feeder.join()

    m = telemetry.metrics
    print("\nwindows (wall clock):")
    print(m[["t_start_s", "decision_count", "response_time_ms_mean", "response_time_ms_p95", "cache_hit_rate",
             "cost_usd"]].round(6).to_string(index=False))
    print("\ncost per model:")
    print(telemetry.costs("model").to_string(index=False))
    for r in advisor.recommendations():
        print(f"\nrecommendation: {r['knob']} {r['old']} -> {r['new']} ({r['kind']}), expected "
              f"{r['expected_improvement_pct']:.0f}% better\n  evidence: {r['evidence']}")
    judged = advisor.measurements()
    if len(judged):
        j = judged.iloc[-1]
        print(f"\nresult: {j['kind']} {j['decision']} ({j['verdict']}); cache TTL now {agent.cache.ttl_s:g} s")
    return 0 if (len(judged) or advisor.recommendations()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
