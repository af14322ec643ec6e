"""``python -m aiayn``: see :mod:`aiayn.cli`."""

from .cli import main

raise SystemExit(main())
