"""The prefork master: binds the listening sockets, forks the workers, supervises them
(respawn, heartbeat timeout, graceful stop, zero-downtime reload) and talks to systemd."""
from .arbiter import Master

__all__ = ["Master"]
