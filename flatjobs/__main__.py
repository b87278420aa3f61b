"""``python -m flatjobs``: the ``flatjobs`` command."""

import sys

from .cli import main

sys.exit(main())
