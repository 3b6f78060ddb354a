"""``python -m aatk``: the command line of [`aatk.cli`][aatk.cli]."""

import sys

from aatk.cli import main

sys.exit(main())
