"""``python -m aiayn``: see :mod:`aiayn.cli`."""

import signal
import sys
from types import FrameType


def _stop(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM while the package imports: one line, no traceback."""
    print(f"interrupted by {signal.Signals(signum).name}", file=sys.stderr)
    raise SystemExit(130)


for _signal in (signal.SIGINT, signal.SIGTERM):  # main() installs its own
    signal.signal(_signal, _stop)

from .cli import main  # noqa: E402

raise SystemExit(main())
