"""E-mail notifications: immediate alerts and digests from the outbox, over SMTP.

Entry points for the CLI and the daemon's scheduler: :func:`send_pending_alerts`
and :func:`send_digest`. :mod:`.message` builds the MIME message, :mod:`.smtp`
sends it, :mod:`.outbox` keeps the delivery state in the database.
"""

from monitor.outcome.notify.outbox import digest_period, send_digest, send_pending_alerts

__all__ = ["digest_period", "send_digest", "send_pending_alerts"]
