"""Data sets value_lens builds axes from (see :mod:`value_lens.data.icrl`)."""
