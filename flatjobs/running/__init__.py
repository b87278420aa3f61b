"""Running a listener: the runner, signals, and the reconciliation sweep.

Internal: the public names are re-exported from :mod:`flatjobs`."""
