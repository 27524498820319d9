"""``python -m emulator`` is the ``mmemu`` command."""

import sys

from emulator.cli import main

sys.exit(main())
