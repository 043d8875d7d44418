"""Live mode: watch a run as it goes (dashboard, ``/api/state``, Prometheus ``/metrics``, Jupyter).

:class:`~swarmopt.live.state.LiveState` keeps what is shown,
:class:`~swarmopt.live.prom.PromExporter` exports it to Prometheus,
:class:`~swarmopt.live.server.LiveServer` serves both on 127.0.0.1 and
:class:`~swarmopt.live.notebook.NotebookView` shows it in Jupyter.
"""
