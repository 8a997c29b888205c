"""Pipeline: the resumable steps shared by the ``value-lens`` CLI and the demo, and the results
folder contract (``rundir``)."""
