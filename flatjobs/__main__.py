"""``python -m flatjobs``: the ``flatjobs`` command."""

import sys

from ._cli import main

sys.exit(main())
