"""Load-testing optimization policies: policies x scenarios x seeds on Ray, compared with statistics.

``swarmopt.loadtest(spec, out_dir=..., workers=..., resume=..., quick=...)``
runs a load test and returns a :class:`LoadTestResult` (see
:func:`swarmopt.loadtest.api.loadtest`). The modules, each with one job:
:mod:`.spec` (the YAML spec), :mod:`.plan` (spec -> runs), :mod:`.execute`
(Ray tasks), :mod:`.store` (finished runs on disk, resume), :mod:`.measures`
(per-run figures), :mod:`.compare` (paired comparisons), :mod:`.truth` (ground
truth by forking), :mod:`.oracle` (best static configuration),
:mod:`.summary`, :mod:`.gate` (``--fail-if``), :mod:`.report` (HTML).
"""

import sys
import types

from swarmopt.loadtest.api import LoadTestResult, loadtest

__all__ = ["loadtest", "LoadTestResult"]


class _CallableModule(types.ModuleType):
    """Importing this package binds ``swarmopt.loadtest`` to the package, over
    the lazily exported function of the same name; calling the package calls
    the function, so ``swarmopt.loadtest(spec)`` works in every import order."""

    def __call__(self, *args, **kwargs) -> LoadTestResult:
        return loadtest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
