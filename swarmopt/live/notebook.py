"""A live-updating view of a :class:`~swarmopt.simulation.Simulation` in Jupyter.

``sim.run(until=..., live=True)`` shows :meth:`LiveState.html
<swarmopt.live.state.LiveState.html>` in an IPython display and updates it
after every optimizer cycle (a display handle, no widgets).
"""

from __future__ import annotations

from typing import Any, Callable

from swarmopt.live.state import LiveState


class NotebookView:
    """A :class:`LiveState` and an IPython display handle; ``now()`` gives the
    simulated time shown."""

    def __init__(self, state: LiveState, now: Callable[[], float]) -> None:
        self.state = state
        self.now = now
        self.handle: Any = None
        self.show()

    @classmethod
    def attach(cls, sim: Any) -> "NotebookView":
        """A view of ``sim`` that starts from its tables so far and observes it
        from now on. Raises ImportError naming the package when IPython is missing."""
        state = LiveState(sim.scenario)
        sim._sink.replay(state)
        sim.observe(state)
        return cls(state, lambda: sim.now)

    def show(self) -> None:
        """Show the view in a new output (each ``run(live=True)`` call gets one)."""
        try:
            from IPython.display import HTML, display
        except ImportError:
            raise ImportError("run(live=True) needs IPython: pip install ipython (or run it in Jupyter)") from None
        self._html = HTML
        self.handle = display(HTML(self.state.html(self.now())), display_id=True)

    def update(self) -> None:
        """Redraw the view with the state now."""
        self.handle.update(self._html(self.state.html(self.now())))
