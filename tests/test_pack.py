"""What crosses between the driver and the Ray actors (runtime.ray_backend.pack): the C pickler's bytes where they
can be loaded in another process, cloudpickle's where they cannot."""

from __future__ import annotations

import pickle
import sys

import numpy as np

from swarmopt.runtime.ray_backend import pack
from swarmopt.sim.inbox import Message


def test_plain_data_is_pickled_by_the_c_pickler_and_round_trips():
    rows = [{"agent": "a", "response_time_ms_mean": 1.5, "window": 3}]
    msgs = [Message(1.0, "a", 7, "b", 3, 0.5)]
    payload = (0.0, 300.0, rows, msgs, np.arange(5.0))
    b = pack(payload)
    assert b == pickle.dumps(payload, protocol=5)
    out = pickle.loads(b)
    assert out[2] == rows and out[3] == msgs and np.array_equal(out[4], payload[4])


def test_a_lambda_goes_by_cloudpickle():
    b = pack(lambda x: x + 1)
    assert pickle.loads(b)(1) == 2


def test_a_class_of_main_goes_by_value(monkeypatch):
    """A class the driver's __main__ defines (a script's or a notebook's) is named by the C pickler, and another
    process has no such class: pack ships it by value, so it loads where __main__ lacks it."""
    cls = type("Probe", (), {"__module__": "__main__", "value": 42})
    monkeypatch.setattr(sys.modules["__main__"], "Probe", cls, raising=False)
    b = pack(cls())
    assert b != pickle.dumps(cls(), protocol=5)
    monkeypatch.delattr(sys.modules["__main__"], "Probe")
    assert pickle.loads(b).value == 42
