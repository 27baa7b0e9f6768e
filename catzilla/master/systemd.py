"""The systemd notification protocol (sd_notify(3)), spoken directly: one datagram per
message to $NOTIFY_SOCKET. No libsystemd needed."""
from __future__ import annotations

import os
import socket

__all__ = ["Notifier"]


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        environ = dict(os.environ) if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket: the name starts with a NUL byte
            address = "\0" + address[1:]
        self.address = address or None
        self.watchdog_interval = self._watchdog_interval(environ)
        self._socket: socket.socket | None = None

    @staticmethod
    def _watchdog_interval(environ: dict[str, str]) -> float | None:
        """Half of WATCHDOG_USEC in seconds (systemd's advice), if the watchdog is ours."""
        try:
            usec = int(environ.get("WATCHDOG_USEC", "0"))
            pid = int(environ.get("WATCHDOG_PID", str(os.getpid())))
        except ValueError:
            return None
        if usec <= 0 or pid != os.getpid():
            return None
        return usec / 2_000_000

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message.encode(), self.address)
            return True
        except OSError:
            return False  # systemd gone or not listening: notification is best effort

    def ready(self, status: str = "") -> None:
        self.notify(f"READY=1\nMAINPID={os.getpid()}" + (f"\nSTATUS={status}" if status else ""))

    def reloading(self) -> None:
        self.notify("RELOADING=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
