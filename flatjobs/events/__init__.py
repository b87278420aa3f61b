"""Events as they enter: the checked event, deliveries, topics, and matching.

Internal: the public names are re-exported from :mod:`flatjobs`."""
