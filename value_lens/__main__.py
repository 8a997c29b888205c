"""``python -m value_lens ...`` runs the ``value-lens`` command line."""

from value_lens.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
