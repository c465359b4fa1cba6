"""HTTP API of ``monitor serve`` (FastAPI; OpenAPI at ``/docs``): thin routers over
:mod:`monitor.services`. Build the app with :func:`create_app`; nothing happens at import.
"""

from monitor.api.app import create_app

__all__ = ["create_app"]
