"""The ``flatjobs`` command, ``flatjobs dev``'s display, and its reloader.

Internal: only the console script and ``python -m flatjobs`` use it (``_cli.main``).

``_cli`` (``main``, the entry point) parses with ``_args`` and hands over to a command's
module: ``_run`` (``flatjobs run``; its distributed mode in ``_distributed``; both built
from ``_parts``: the client, the first call that checks it, the source, the sweep, the
health server), ``_dev`` (``flatjobs dev``, showing jobs with ``_display`` and reloading
with ``_reload``) or ``_emulator``. ``_target`` loads the ``TARGET`` argument; ``_console``
is what the command writes on stderr and how it exits. Imports go that way only.
"""
