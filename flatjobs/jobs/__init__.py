"""Jobs: the handler registry, the lifecycle, progress and the one way a job ends.

Internal: the public names are re-exported from :mod:`flatjobs`."""
