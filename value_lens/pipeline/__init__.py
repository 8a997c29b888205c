"""Pipeline: the resumable steps shared by the ``value-lens`` command line and the demo
(``steps``, ``sweep_steps``, ``read_steps``, ``steer_steps``, ``compare_steps``,
``export_steps``, ``live_steps``), the results-folder contract (``rundir``) and the report
built from it (``report``). Names load their module on first use.

Example:
    >>> from value_lens import pipeline
    >>> pipeline.run_demo.__module__
    'value_lens.pipeline.demo'
"""

from value_lens._lazy import attach

_NAMES = {
    "run_demo": "value_lens.pipeline.demo",
    "report_from_dir": "value_lens.pipeline.report",
}
_MODULES = (
    "compare_steps",
    "demo",
    "demo_config",
    "export_steps",
    "launch",
    "live_steps",
    "options",
    "read_steps",
    "report",
    "rundir",
    "steer_steps",
    "steps",
    "sweep_steps",
    "sweep_store",
)
__all__ = list(_NAMES)
__getattr__, __dir__ = attach(__name__, _NAMES, _MODULES)
