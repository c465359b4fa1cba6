"""The ``monitor`` command line (Typer): thin commands over :mod:`monitor.services`.

:mod:`.main` builds the app; :mod:`.gallery`, :mod:`.violations` and :mod:`.serve`
add their command groups; :mod:`.view` renders tables with Rich.
"""

from monitor.cli.main import app

__all__ = ["app"]
