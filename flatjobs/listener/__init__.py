"""The listener: callbacks and routers by topic and EventFilter.

Internal: the public names are re-exported from :mod:`flatjobs`."""
