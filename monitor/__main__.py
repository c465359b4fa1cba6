"""``python -m monitor``: the command line (same as the ``monitor`` script)."""

from monitor.cli import app

if __name__ == "__main__":
    app()
