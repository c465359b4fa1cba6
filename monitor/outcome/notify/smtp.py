"""Sending one message over SMTP (``smtplib``) with the configured transport and login.

Transports (``smtp.security``): ``starttls`` — plain connection upgraded with
STARTTLS (RFC 3207), usually port 587; ``tls`` — implicit TLS from the first
byte (RFC 8314), usually port 465; ``none`` — no encryption (a local relay).
Certificates are verified against the system trust store. The password comes
from ``MONITOR_SMTP__PASSWORD`` or ``smtp.password_file`` via
:meth:`monitor.config.Settings.secret`; login happens only when
``smtp.username`` is set. ``smtp.timeout`` (seconds) bounds connect and each
command.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from monitor.config import Settings
from monitor.errors import ConfigError

SendError = (smtplib.SMTPException, OSError)
"""Exceptions of a failed delivery (network, TLS, refused, timeout); retried with backoff."""


def tls_context() -> ssl.SSLContext:
    """The TLS client context: system CAs, hostname checking, TLS 1.2 or newer."""
    return ssl.create_default_context()


def deliver(settings: Settings, msg: EmailMessage, recipients: list[str]) -> dict[str, str]:
    """Send ``msg`` to ``recipients`` (envelope) from ``smtp.sender``.

    Returns the recipients the server refused while accepting others
    (address → reply); empty when all were accepted.

    Raises:
        ConfigError: ``smtp.host`` is empty, there are no recipients, or the
            password file cannot be read.
        smtplib.SMTPException, OSError: connection, TLS, login or delivery failed.
    """
    smtp = settings.smtp
    if not smtp.host:
        raise ConfigError("smtp.host is not set; e-mail is disabled")
    if not recipients:
        raise ConfigError("no recipients: set smtp.recipients")
    password = settings.secret(smtp.password, smtp.password_file)
    if smtp.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout,
                                                context=tls_context())
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        client.ehlo()
        if smtp.security == "starttls":
            client.starttls(context=tls_context())
            client.ehlo()
        if smtp.username:
            client.login(smtp.username, password)
        refused = client.send_message(msg, from_addr=smtp.sender, to_addrs=recipients)
    return {addr: f"{code} {reply.decode(errors='replace')}"
            for addr, (code, reply) in refused.items()}
