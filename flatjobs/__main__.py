"""``python -m flatjobs``: the ``flatjobs`` command."""

import sys

from .dev._cli import main

sys.exit(main())
