"""Fitting: stream labelled tokens into additive statistics (``collect``, ``stats``), fit directions
(``methods``), and hold them as a :class:`~value_lens.fitting.axis.ValueAxis`."""
