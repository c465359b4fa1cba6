"""``monitor serve`` without its HTTP face: queue workers, the scheduler, the outbound
webhook sender and the process that runs them (:class:`~monitor.daemon.runner.Daemon`)."""

from monitor.daemon.runner import Daemon, serve

__all__ = ["Daemon", "serve"]
