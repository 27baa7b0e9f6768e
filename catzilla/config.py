"""Every setting of the server, with its default, its flag and its environment variable.

One table drives the command line (`--keep-alive-timeout`), the environment
(`CATZILLA_KEEP_ALIVE_TIMEOUT`) and `app.listen(...)`; precedence is flag > environment >
default. Each default carries the reason it is what it is.
"""
from __future__ import annotations

import dataclasses
import os
import typing

__all__ = ["Config", "ENV_PREFIX", "setting_env", "parse_value", "cpu_count"]

ENV_PREFIX = "CATZILLA_"


def cpu_count() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _workers(raw: str) -> int:
    if raw.strip().lower() == "auto":
        return cpu_count()
    value = int(raw)
    if value < 1:
        raise ValueError("workers must be at least 1 (or 'auto')")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean, got {raw!r}")


def _choice(*choices: str) -> typing.Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return raw
    return parse


def _list(item: typing.Callable[[str], typing.Any]) -> typing.Callable[[str], list[typing.Any]]:
    def parse(raw: str) -> list[typing.Any]:  # the environment form: comma or space separated
        return [item(part) for part in raw.replace(",", " ").split()]
    return parse


def _optional_str(raw: str) -> str | None:
    return raw or None


def _max_queue(raw: str) -> int | None:
    """A count, or 'auto' (None): twice the pool's threads, decided by the worker."""
    return None if raw.strip().lower() == "auto" else int(raw)


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError(f"a TCP port is 0..65535, got {value}")
    return value


DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000


def _setting(default: typing.Any, help: str, parse: typing.Callable[[str], typing.Any] = str,
             *, env: str | None = None, repeatable: bool = False, flag: bool = False,
             factory: typing.Callable[[], typing.Any] | None = None) -> typing.Any:
    metadata = {"help": help, "env": env, "parse": parse, "repeatable": repeatable, "flag": flag}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _default_workers() -> int:
    # WEB_CONCURRENCY is what Heroku, gunicorn and uvicorn read; Kubernetes manifests set it.
    try:
        return _workers(os.environ.get("WEB_CONCURRENCY", "1"))
    except ValueError:
        return 1


@dataclasses.dataclass
class Config:
    # -- where to listen
    host: str | None = _setting(None, "Address to bind (default 127.0.0.1: loopback unless "
                                "told otherwise, so a development server is never exposed by "
                                "accident).", _optional_str)
    port: int | None = _setting(None, "TCP port to bind (default 8000).", _port)
    bind: list[str] = _setting(None, "Bind HOST:PORT (repeatable; replaces --host/--port).",
                               _list(str), repeatable=True, factory=list)
    uds: str | None = _setting(None, "Listen on this Unix domain socket path (with no "
                               "--host/--port/--bind, only there).", _optional_str)
    fd: list[int] = _setting(None, "Serve on this already-open listening file descriptor "
                             "(repeatable; with no --host/--port/--bind, only there).",
                             _list(int), repeatable=True, factory=list)
    reuse_port: bool = _setting(False, "Set SO_REUSEPORT on TCP sockets, so that another "
                                "server may bind the same port (a binary upgrade); off, a "
                                "port in use is an error.", _bool, flag=True)
    backlog: int = _setting(2048, "Listen queue length: absorbs connection bursts while "
                            "workers are busy (the kernel caps it at net.core.somaxconn).", int)
    # -- processes
    workers: int = _setting(None, "Worker processes, or 'auto' for one per CPU "
                            "(default: $WEB_CONCURRENCY or 1).", _workers, factory=_default_workers)
    threads: int = _setting(40, "Threads per worker for `def` handlers: sync handlers mostly "
                            "wait on I/O, so 40 overlapping waits per worker cost little memory.", int)
    preload: bool = _setting(False, "Import the app once in the master before forking "
                             "(faster start, shared memory; HUP then cannot pick up new code).",
                             _bool, flag=True)
    timeout: float = _setting(30.0, "Seconds a worker's event loop may go without running "
                              "before the master dumps its stack and replaces it (gunicorn's 30).", float)
    graceful_timeout: float = _setting(30.0, "Seconds a graceful stop waits for in-flight "
                                       "requests and background tasks before giving up on them.", float)
    request_timeout: float = _setting(60.0, "Seconds a handler may run before the request is "
                                      "answered 504 (an async handler is cancelled, a sync one "
                                      "abandoned to its thread); a route's timeout= overrides it. "
                                      "60 s is what the proxies in front wait by default (nginx's "
                                      "proxy_read_timeout, a cloud load balancer's idle timeout): a "
                                      "later answer would reach nobody. 0: no limit.", float)
    # -- overload: refuse at once (503 + Retry-After) rather than queue without bound
    max_queue: int | None = _setting(None, "Sync requests that may wait for a pool thread; one "
                                     "more is refused 503 at once. Default 'auto', 2 x --threads: "
                                     "a full queue then waits about two handler durations, so "
                                     "admitted requests stay fast under overload while a burst "
                                     "of three times --threads is still absorbed. 0: never wait.",
                                     _max_queue)
    queue_timeout: float = _setting(5.0, "Seconds a sync request may wait for a pool thread; "
                                    "one that waited longer is answered 503 instead of run, since "
                                    "its client has most likely given up or retried. 0: no limit.",
                                    float)
    limit_concurrency: int = _setting(0, "Requests a worker has in flight (async handlers "
                                      "running, plus the pool's running and queued jobs) beyond "
                                      "which new ones are refused 503 at once (uvicorn's "
                                      "--limit-concurrency). 0: no limit, since async requests cost "
                                      "a Task each and the sync queue is bounded by --max-queue.", int)
    # -- CPU-bound `def` handlers (README, "The CPU lane")
    cpu_workers: int | None = _setting(None, "Processes of the CPU lane, where cpu_bound=True "
                                       "handlers run (forked by the master next to the workers). "
                                       "Default 'auto': one per CPU, started only when a route needs "
                                       "them (cpu_bound=True, or --auto-cpu-lane), since a CPU-bound "
                                       "handler can use a core and no more. 0: no lane (they run in "
                                       "the thread pool).", _max_queue)
    cpu_nice: int = _setting(10, "Niceness added to the CPU lane's processes: when they and the "
                             "workers want the same cores, the kernel runs a worker's event loop "
                             "first, so answering quick requests is not queued behind computing "
                             "(10: a nice-0 worker then gets about ten times the share). 0: same "
                             "priority.", int)
    auto_cpu_lane: bool = _setting(False, "Move a `def` route to the CPU lane once its handler "
                                   "is measured CPU-bound (see catzilla stats); off by default, "
                                   "since a handler that relies on the worker's memory would "
                                   "change behaviour.", _bool, flag=True)
    switch_interval: float = _setting(0.001, "Seconds a worker's thread may hold the GIL while "
                                      "another waits for it (sys.setswitchinterval): the event loop "
                                      "waits up to this long for its turn after each wake-up while a "
                                      "sync handler computes. Python's 5 ms made a one-at-a-time "
                                      "client's p99 10x worse beside CPU-bound handlers; 1 ms gave "
                                      "the loop its turn 5x sooner at no cost to short sync handlers' "
                                      "throughput (measurements in README). 0: Python's default.",
                                      float)
    inline_batch: bool = _setting(True, "Answer the requests of one event-loop turn that run "
                                  "straight (an async handler or chain that cannot suspend, a bare "
                                  "def handler's pool hand-off) together: every such request read "
                                  "first, then every handler or hand-off, then every write, so each "
                                  "step's code stays in the CPU's instruction cache and pool threads "
                                  "wake once per turn (1.7x the requests/s of one at a time on "
                                  "/json, 1.2x on /sync; issue 13). Off: each request is started "
                                  "as soon as it is parsed, a few microseconds sooner when the "
                                  "server is idle.", _bool, flag=True)
    # -- background tasks (app.enable_background_tasks(), Catzilla 0.2.3's engine): per
    # worker process; enable_background_tasks()'s own keywords win over these.
    task_workers: int = _setting(4, "Threads per worker process running app.add_task() jobs: "
                                 "tasks are mostly I/O (mail, webhooks), so a few overlap their "
                                 "waits; more would only contend for the GIL with the handlers.", int)
    task_queue_size: int = _setting(10000, "Tasks waiting per worker process; add_task() raises "
                                    "when it is full, so a burst cannot grow memory without bound.", int)
    task_max_retries: int = _setting(3, "Times a failing task is run again before it is marked "
                                     "failed (0.2.3's default); @app.task and add_task() may say "
                                     "otherwise.", int)
    task_timeout: float = _setting(30.0, "Seconds an async def task may run before it is "
                                   "cancelled and counted as timed out (0.2.3's 30 s); a def task "
                                   "cannot be interrupted. 0: no limit.", float)
    task_keep_results: int = _setting(10000, "Task results kept per worker process for "
                                      "get_task_result(), the oldest dropped first: each costs "
                                      "memory until asked for.", int)
    max_requests: int = _setting(0, "Recycle a worker after this many requests (0: never); "
                                 "bounds the damage of slow leaks.", int)
    max_requests_jitter: int = _setting(0, "Add up to this many requests at random to "
                                        "--max-requests, so workers do not all recycle at once.", int)
    pid: str | None = _setting(None, "Write the master's pid to this file.", _optional_str)
    # -- HTTP
    keep_alive_timeout: float = _setting(5.0, "Seconds an idle keep-alive connection stays "
                                         "open (uvicorn's 5 s).", float)
    header_timeout: float = _setting(10.0, "Seconds a client has to send a whole request head "
                                     "(and the longest pause inside a body): slow-loris clients "
                                     "are answered 408 and closed.", float)
    max_header_size: int = _setting(16384, "Bytes allowed for the request line plus headers "
                                    "(431 above): 16 KiB fits large cookies, not abuse.", int)
    max_body_size: int = _setting(16 * 1024 * 1024, "Bytes allowed for a request body (413 "
                                  "above): bodies are read into memory before the handler runs. "
                                  "A route's max_body_size= replaces it; a multipart body of a "
                                  "route that takes files is bounded by the upload limits below "
                                  "instead (its text fields, held in memory, by this).", int)
    # -- request bodies a route receives as they arrive: uploads and streams (413 above a limit)
    max_file_size: int = _setting(1024 ** 3, "Bytes allowed for one uploaded file: uploads go "
                                  "to temporary files, so the bound is the disk's, and 1 GiB is "
                                  "more than any web form expects. 0: empty files only.", int)
    max_files: int = _setting(1000, "Files allowed in one multipart form (Starlette's 1000): "
                              "each costs a temporary file.", int)
    max_fields: int = _setting(1000, "Text fields allowed in one multipart form (Starlette's "
                               "1000): each costs a parser round and memory.", int)
    max_part_header_size: int = _setting(8192, "Bytes allowed for the headers of one multipart "
                                         "part: a name, a file name and a type need a few "
                                         "hundred.", int)
    upload_spool_size: int = _setting(1024 * 1024, "Bytes of an uploaded file kept in memory; a "
                                      "larger file goes to a temporary file ($TMPDIR), so a "
                                      "worker's memory does not grow with uploads. 0: every "
                                      "upload straight to disk.", int)
    stream_buffer_size: int = _setting(256 * 1024, "Bytes of a streamed request body (a route's "
                                       "stream=True) buffered for a handler that reads slower "
                                       "than its client sends; reading the socket pauses above "
                                       "it (one uvloop read, so a pause is rarely needed).", int)
    write_buffer_high: int = _setting(64 * 1024, "Bytes buffered for a slow reader before the "
                                      "connection stops taking new pipelined requests.", int)
    write_timeout: float = _setting(30.0, "Seconds a connection may have unsent response bytes "
                                    "without the client taking any of them before it is closed: a "
                                    "reader that stalls this long is gone or hostile, and its "
                                    "buffered response is memory held for nobody. 0: no limit.", float)
    # Files (FileResponse, static files): sent with sendfile(2), never read into memory.
    max_ranges: int = _setting(16, "Byte ranges a request may ask for, once overlapping ones "
                               "are merged; beyond it the whole file is sent (200): thousands of "
                               "tiny ranges cost far more to send than the file (the Apache "
                               "'Range' denial of service, CVE-2011-3192).", int)
    sendfile_chunk: int = _setting(1024 * 1024, "Bytes of a file one sendfile(2) call may send "
                                   "before the worker serves its other connections: larger is "
                                   "fewer system calls, smaller is fairer to them.", int)
    min_body_rate: int = _setting(240, "Bytes per second a request body must average once "
                                  "--body-rate-grace has passed, or the request is answered 408 "
                                  "(Kestrel's 240 B/s): one byte every few seconds would otherwise "
                                  "hold a connection for days. 0: no minimum.", int)
    body_rate_grace: float = _setting(5.0, "Seconds a request body may arrive at any rate before "
                                      "--min-body-rate applies (Kestrel's 5 s): covers a slow "
                                      "start and a client's pause for 100 Continue.", float)
    health_path: str | None = _setting(None, "Answer liveness probes here (200 while the "
                                       "worker's loop runs), before any user route.", _optional_str)
    ready_path: str | None = _setting(None, "Answer readiness probes here (503 while "
                                      "draining, so a load balancer stops routing).", _optional_str)
    # -- behind a proxy, TLS, WebSockets, development (uvicorn's flags and defaults)
    proxy_headers: bool = _setting(True, "Take the client's address and scheme from Forwarded / "
                                   "X-Forwarded-For / X-Forwarded-Proto, only when the peer is in "
                                   "--forwarded-allow-ips (uvicorn's default: on).", _bool, flag=True)
    forwarded_allow_ips: list[str] = _setting(None, "Peers (addresses or networks, comma "
                                              "separated; '*' for all) whose proxy headers are "
                                              "believed. Default 127.0.0.1: a proxy on this host; "
                                              "anyone else could forge them.", _list(str),
                                              factory=lambda: ["127.0.0.1"])
    root_path: str = _setting("", "The path prefix a proxy serves the app under (/api): in "
                              "request.url and scope['root_path'], stripped before routing when "
                              "a request still carries it (Catzilla(root_path=) wins).", str)
    ssl_keyfile: str | None = _setting(None, "TLS private key file (PEM): serve HTTPS.", _optional_str)
    ssl_certfile: str | None = _setting(None, "TLS certificate chain file (PEM).", _optional_str)
    ssl_keyfile_password: str | None = _setting(None, "Password of an encrypted --ssl-keyfile.",
                                                _optional_str)
    ssl_ca_certs: str | None = _setting(None, "CA certificates file to verify client "
                                        "certificates with (see --ssl-cert-reqs).", _optional_str)
    ssl_cert_reqs: int = _setting(0, "Client certificates: 0 not asked, 1 optional, 2 required "
                                  "(ssl.CERT_*; uvicorn's default 0).", int)
    ws_max_size: int = _setting(16 * 1024 * 1024, "Bytes a WebSocket message may have (close "
                                "1009 above; uvicorn's 16 MiB): messages are assembled in memory.", int)
    ws_max_queue: int = _setting(32, "WebSocket messages received and not yet read by the "
                                 "handler before the connection stops reading (uvicorn's 32).", int)
    ws_ping_interval: float = _setting(20.0, "Seconds between pings on an idle-or-not WebSocket "
                                       "(uvicorn's 20 s): finds peers that vanished without a "
                                       "close and keeps proxies from timing the connection out. "
                                       "0: no pings.", float)
    ws_ping_timeout: float = _setting(20.0, "Seconds to wait for a pong, and for the peer's "
                                      "answer to our close frame, before dropping the connection "
                                      "(uvicorn's 20 s).", float)
    ws_per_message_deflate: bool = _setting(True, "Offer permessage-deflate compression to "
                                            "WebSocket clients (uvicorn's default: on).", _bool, flag=True)
    reload: bool = _setting(False, "Development: reload the workers (HUP, zero downtime) when a "
                            "watched file changes (needs the `reload` extra: watchfiles).", _bool, flag=True)
    reload_dir: list[str] = _setting(None, "Directory to watch with --reload (repeatable; "
                                     "default: the current directory).", _list(str),
                                     repeatable=True, factory=list)
    reload_include: list[str] = _setting(None, "Glob of file names to watch with --reload, "
                                         "besides *.py (repeatable).", _list(str),
                                         repeatable=True, factory=list)
    reload_exclude: list[str] = _setting(None, "Glob of file names --reload ignores (repeatable; "
                                         "besides .*, *.py[cod], .sw.*, ~*).", _list(str),
                                         repeatable=True, factory=list)
    reload_delay: float = _setting(0.25, "Seconds --reload waits for more changes before "
                                   "reloading: one save of an editor writes several files.", float)
    # -- statistics
    stats: bool = _setting(True, "Count requests per route and worker in shared memory "
                           "(catzilla.core, --metrics-path, `catzilla stats`).", _bool, flag=True)
    stats_routes: int = _setting(128, "Routes per worker the stats block has room for when "
                                 "the app is not preloaded (with --preload: exactly the app's).", int)
    metrics_path: str | None = _setting(None, "Serve Prometheus metrics here, before any user "
                                        "route (e.g. /metrics).", _optional_str)
    loop_block_threshold: float = _setting(0.1, "Warn when an async handler keeps the event "
                                           "loop busy longer than this many seconds (0: off).", float)
    # -- logs
    log_level: str = _setting("info", "Logging level.",
                              _choice("debug", "info", "warning", "error", "critical"))
    log_format: str = _setting("text", "Log line format: text, or json for log collectors.",
                               _choice("text", "json"))
    log_file: str | None = _setting(None, "Append logs to this file instead of stderr "
                                    "(reopened on SIGUSR1, for logrotate).", _optional_str)
    access_log: bool = _setting(True, "Log one line per request (logger catzilla.access).",
                                _bool, flag=True)
    access_log_backlog: int = _setting(4 * 1024 * 1024, "Bytes of access lines a worker keeps for a "
                                       "log reader that falls behind (a full pipe); beyond, lines "
                                       "are dropped, and counted in a warning.", int)
    access_log_drain: float = _setting(5.0, "Seconds a stopping worker waits for a slow log reader "
                                       "to take its last access lines.", float)

    def tcp_addresses(self) -> list[tuple[str, int]]:
        """Where to listen over TCP: --bind, else --host/--port, else (unless a Unix socket
        or an inherited descriptor was asked for instead) 127.0.0.1:8000."""
        if self.bind:
            return [_split_bind(address) for address in self.bind]
        if self.host is not None or self.port is not None or not (self.uds or self.fd):
            return [(self.host or DEFAULT_HOST, DEFAULT_PORT if self.port is None else self.port)]
        return []

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, with the setting's name, before anything starts."""
        positive = ("workers", "threads", "max_header_size", "write_buffer_high", "header_timeout",
                    "stats_routes", "max_part_header_size", "stream_buffer_size", "ws_max_size", "ws_max_queue",
                    "task_workers", "task_queue_size", "task_keep_results")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be above 0, got {getattr(self, name)}")
        # 0 means something for these: no timeout, no keep-alive, no bodies, the kernel's backlog.
        for name in ("timeout", "graceful_timeout", "max_requests", "max_requests_jitter",
                     "loop_block_threshold", "keep_alive_timeout", "max_body_size", "backlog",
                     "request_timeout", "max_queue", "queue_timeout", "limit_concurrency",
                     "write_timeout", "min_body_rate", "body_rate_grace", "max_file_size",
                     "max_files", "max_fields", "upload_spool_size", "cpu_workers", "switch_interval",
                     "cpu_nice", "ws_ping_interval", "ws_ping_timeout", "reload_delay", "task_max_retries",
                     "task_timeout"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if self.port is not None:
            _port(str(self.port))
        for address in self.bind:
            _split_bind(address)
        if self.ssl_cert_reqs not in (0, 1, 2):
            raise ValueError(f"ssl-cert-reqs is 0, 1 or 2, got {self.ssl_cert_reqs}")
        if self.ssl_keyfile and not self.ssl_certfile:  # a certfile may hold the key too
            raise ValueError("--ssl-keyfile needs --ssl-certfile")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ValueError(f"root-path starts with '/' and does not end with one, got {self.root_path!r}")

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None, **overrides: typing.Any) -> "Config":
        """Defaults, then CATZILLA_* variables, then explicit `overrides` (None = not given)."""
        environ = os.environ if environ is None else environ
        values: dict[str, typing.Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(setting_env(field))
            if raw is not None and raw != "":
                values[field.name] = parse_value(field, raw)
        fields = {field.name: field for field in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if value is None:
                continue
            if isinstance(value, str) and name in fields:  # app.listen(workers="auto", port="8000")
                value = parse_value(fields[name], value)
            values[name] = value
        return cls(**values)


def _split_bind(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--bind wants HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def setting_env(field: dataclasses.Field[typing.Any]) -> str:
    return field.metadata.get("env") or ENV_PREFIX + field.name.upper()


def parse_value(field: dataclasses.Field[typing.Any], raw: str) -> typing.Any:
    try:
        return field.metadata["parse"](raw)
    except ValueError as exc:
        raise ValueError(f"{setting_env(field)}={raw!r}: {exc}") from None
