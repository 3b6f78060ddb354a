"""``python -m aatk``: the command line of :mod:`aatk.cli`."""

import sys

from aatk.cli import main

sys.exit(main())
