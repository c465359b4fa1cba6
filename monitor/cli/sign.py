"""``monitor sign``: the reference signer of request signing v2.

Prints the headers of one signed request, one ``Name: value`` per line, with the secret
read from the same settings as the server (``server.webhook_secret`` for the key
``default``, ``[[server.keys]]`` for the others); the scheme is documented in
:mod:`monitor.outcome.signing`. Each run makes a fresh nonce, so the headers are good
for one request within ``server.signature_tolerance`` seconds::

    monitor sign POST http://127.0.0.1:8080/v1/search --data @photo.jpg
    curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' \\
         $(monitor sign POST http://127.0.0.1:8080/v1/search --data @photo.jpg \\
           | sed 's/: /:/; s/^/-H /') http://127.0.0.1:8080/v1/search
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.context import state
from monitor.config import load_settings
from monitor.errors import InvalidRequest
from monitor.services.workspace import Workspace

METHOD = re.compile(r"[A-Za-z]{1,16}")


def body_of(data: str | None) -> bytes:
    """The request body named by ``--data``: ``@FILE`` (its bytes, ``@-`` standard
    input), any other text as UTF-8, nothing when None.

    Raises:
        InvalidRequest: the file cannot be read.
    """
    if data is None:
        return b""
    if not data.startswith("@"):
        return data.encode("utf-8")
    if data == "@-":
        return sys.stdin.buffer.read()
    try:
        return Path(data[1:]).expanduser().read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {data[1:]}: {exc}") from None


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``sign`` command to ``app`` (``workspace`` is unused: signing needs the
    settings only, no database)."""

    @app.command()
    @guarded
    def sign(
        method: Annotated[str, typer.Argument(help="HTTP method, e.g. POST.")],
        url: Annotated[str, typer.Argument(
            help="Request URL (http://host:port/path?query) or path with query.")],
        data: Annotated[str | None, typer.Option(
            "--data", "-d", help="Body: TEXT as UTF-8, or @FILE (@- for standard input), "
            "byte for byte as it will be sent.")] = None,
        key_id: Annotated[str | None, typer.Option(
            "--key-id", help="Key to sign with (default: 'default', else the first "
            "server.keys table).")] = None,
    ) -> None:
        """Print the signature v2 headers of one request (Name: value per line)."""
        from monitor.services.signing import sign_request

        if not METHOD.fullmatch(method):
            raise InvalidRequest(f"not an HTTP method: {method!r}")
        headers = sign_request(load_settings(state["config"]), method.upper(), url,
                               body_of(data), key_id)
        for name, value in headers.items():
            typer.echo(f"{name}: {value}")
