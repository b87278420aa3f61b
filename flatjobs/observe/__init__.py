"""Observing a listener run: the instruments' hooks, and the records they receive (how a
job ended, what a dispatch ran).

Internal: the public names are re-exported from :mod:`flatjobs` and
:mod:`flatjobs.instruments`. The integrations built on them (:mod:`flatjobs.otel`,
:mod:`flatjobs.prometheus`, the health server) sit above the layers they watch."""
