"""The ``flatjobs`` command, ``flatjobs dev``'s display, and its reloader.

Internal: the public names are re-exported from :mod:`flatjobs`."""
