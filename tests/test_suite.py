"""The test session's own set-up: under pytest-xdist, a module's tests run on one worker."""

import pytest


def test_under_xdist_a_modules_tests_share_a_worker(request):
    """conftest.py puts every test in an ``xdist_group`` (its module, or "ray" for the session Ray's), which
    ``--dist loadgroup`` honours by suffixing the node id with ``@group``; without it a module's fixtures (the
    A/A trials) and the session Ray are built once per worker. pytest 9.2 drops the suffix
    (pytest-dev/pytest-xdist#1386), so the test extra pins pytest below it."""
    if not getattr(request.config.option, "loadgroup", False):  # set on the workers of --dist loadgroup
        pytest.skip("not under pytest-xdist's --dist loadgroup")
    assert request.node.nodeid.endswith("@test_suite"), request.node.nodeid
