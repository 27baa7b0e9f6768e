"""Files from a directory: `app.mount("/static", StaticFiles(directory="static"))` (Starlette)
or `app.mount_static("/static", "static")` (Catzilla 0.2.3). Each file is a FileResponse, so
ranges, validators, 304s and HEAD work as there, sent with sendfile(2).

A request path never leaves the directory: `..` segments (also percent-encoded: the server
decodes the path before it gets here), NUL, backslashes and, unless `follow_symlink`, any
symbolic link whose target is outside are answered 404, as a missing file is. Hidden files
(a segment starting with ".") are not served unless asked for. A file with a `.br` or `.gz`
sibling is sent as that sibling to a client that accepts the encoding (Vary: Accept-Encoding).
"""
from __future__ import annotations

import html as html_escape
import importlib.util
import mimetypes
import os
import stat
import typing
import urllib.parse

from .fileresponse import FileResponse
from .responses import HTMLResponse, RedirectResponse, Response, error_response

__all__ = ["StaticFiles", "PRECOMPRESSED", "accepted_encodings"]

# Encodings looked for beside a file, in order of preference (smaller first), by suffix.
PRECOMPRESSED = (("br", ".br"), ("gzip", ".gz"))


def accepted_encodings(header: str | None) -> set[str]:
    """Content codings a client accepts (RFC 9110 12.5.3), "q=0" ones left out."""
    if not header:
        return set()
    accepted = set()
    for item in header.split(","):
        coding, *params = item.split(";")
        coding = coding.strip().lower()
        quality = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding and quality > 0:
            accepted.add(coding)
    if "*" in accepted:
        accepted.update(coding for coding, _ in PRECOMPRESSED)
    return accepted


class StaticFiles:
    """Starlette's `StaticFiles(directory=None, packages=None, html=False, check_dir=True,
    follow_symlink=False)`, plus `index_file`, `hidden_files`, `precompressed`,
    `cache_control`, `etags`, `ranges`, `max_file_size` and `directory_listing` (what
    Catzilla 0.2.3's mount_static offers)."""

    # `app.mount()` recognises this and registers routes served here, on the worker's own
    # fast path, instead of wrapping the object as an ASGI app.
    catzilla_static = True

    def __init__(
        self,
        *,
        directory: str | os.PathLike[str] | None = None,
        packages: list[str | tuple[str, str]] | None = None,
        html: bool = False,
        check_dir: bool = True,
        follow_symlink: bool = False,
        index_file: str = "index.html",
        hidden_files: bool = False,
        precompressed: bool = True,
        cache_control: str | None = None,
        etags: bool = True,
        ranges: bool = True,
        max_file_size: int | None = None,
        directory_listing: bool = False,
    ) -> None:
        self.directories = [os.path.realpath(path) for path in self._directories(directory, packages)]
        if check_dir:
            for path in self.directories:
                if not os.path.isdir(path):
                    raise RuntimeError(f"Directory '{path}' does not exist")
        self.html = html
        self.follow_symlink = follow_symlink
        self.index_file = index_file
        self.hidden_files = hidden_files
        self.precompressed = precompressed
        self.cache_control = cache_control
        self.etags = etags
        self.ranges = ranges
        self.max_file_size = max_file_size
        self.directory_listing = directory_listing

    @staticmethod
    def _directories(directory: typing.Any, packages: typing.Any) -> list[str]:
        found = [os.fspath(directory)] if directory is not None else []
        for package in packages or []:
            name, folder = package if isinstance(package, tuple) else (package, "statics")
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                raise RuntimeError(f"Package {name!r} is not installed")
            found.append(os.path.join(os.path.dirname(spec.origin), folder))
        if not found:
            raise TypeError("StaticFiles needs a directory or packages")
        return found

    # -- registration ------------------------------------------------------------------------

    def attach(self, app: typing.Any, path: str, name: str | None = None) -> None:
        """Register this directory's routes on `app` under `path` (what app.mount and
        app.mount_static do): `path/` and everything below it, GET and HEAD."""
        prefix = "/" + path.strip("/")
        if prefix == "/":
            prefix = ""

        async def static_file(request: typing.Any) -> Response:
            return self.respond(request, request.path_params.get("path", ""), request.path)

        # Files are not operations: the OpenAPI document leaves them out (as FastAPI's mounts).
        app.add_route(prefix + "/{path:path}", static_file, ["GET"], name=name,
                      include_in_schema=False)
        if prefix:
            async def static_root(request: typing.Any) -> Response:
                return self.respond(request, "", request.path)

            app.add_route(prefix, static_root, ["GET"], name=f"{name}-root" if name else None,
                          include_in_schema=False)

    # -- per request -------------------------------------------------------------------------

    def lookup(self, subpath: str) -> tuple[str, os.stat_result] | None:
        """The real path of `subpath` inside one of the directories, and its stat; None when
        there is no such file or the path may not be served."""
        if "\x00" in subpath or "\\" in subpath:
            return None
        segments = [segment for segment in subpath.split("/") if segment not in ("", ".")]
        if any(segment == ".." for segment in segments):
            return None
        if not self.hidden_files and any(segment.startswith(".") for segment in segments):
            return None
        for directory in self.directories:
            candidate = os.path.join(directory, *segments)
            real = os.path.realpath(candidate)
            if not self.follow_symlink and real != directory and not real.startswith(directory + os.sep):
                continue  # a link pointing out of the directory
            try:
                result = os.stat(real)
            except (OSError, ValueError):
                continue
            return real, result
        return None

    def respond(self, request: typing.Any, subpath: str, url_path: str) -> Response:
        found = self.lookup(subpath)
        if found is not None and stat.S_ISDIR(found[1].st_mode):
            if not url_path.endswith("/"):
                # Relative links in the index resolve against the directory (Starlette's 307).
                # One leading slash only: "//host/dir" would send the client to another site.
                query = "?" + request.query_string if request.query_string else ""
                return RedirectResponse(urllib.parse.quote("/" + url_path.lstrip("/")) + "/" + query)
            index = self.lookup(subpath.rstrip("/") + "/" + self.index_file)
            if index is not None and stat.S_ISREG(index[1].st_mode):
                return self.file_response(request, *index)
            if self.directory_listing:
                return self._listing(found[0], url_path)
            found = None
        if found is not None and url_path.endswith("/") and subpath:
            found = None  # "file.txt/" names a directory that is not there (ENOTDIR)
        if found is None or not stat.S_ISREG(found[1].st_mode):
            if self.html:
                page = self.lookup("404.html")
                if page is not None and stat.S_ISREG(page[1].st_mode):
                    return self.file_response(request, *page, status_code=404)
            return error_response(404, "Not Found")
        return self.file_response(request, *found)

    def file_response(self, request: typing.Any, path: str, result: os.stat_result,
                      status_code: int = 200) -> Response:
        if self.max_file_size is not None and result.st_size > self.max_file_size:
            return error_response(404, "Not Found")
        headers: list[tuple[bytes, bytes]] = []
        served = path
        media_type = None
        if self.precompressed:
            accepted = None
            for coding, suffix in PRECOMPRESSED:
                sibling = path + suffix
                try:
                    sibling_stat = os.stat(sibling)
                except OSError:
                    continue
                if not stat.S_ISREG(sibling_stat.st_mode):
                    continue
                if not headers:
                    headers.append((b"vary", b"Accept-Encoding"))
                if accepted is None:
                    accepted = accepted_encodings(request.headers.get("accept-encoding"))
                if coding in accepted and served is path:
                    served = sibling
                    headers.append((b"content-encoding", coding.encode("ascii")))
            if served is not path:
                media_type = mimetypes.guess_type(path)[0] or "text/plain"
        if self.cache_control:
            headers.append((b"cache-control", self.cache_control.encode("latin-1")))
        response = FileResponse(served, status_code, headers, media_type)
        response.validators = self.etags
        response.ranges = self.ranges
        return response

    def _listing(self, directory: str, url_path: str) -> Response:
        names = sorted(os.listdir(directory))
        if not self.hidden_files:
            names = [name for name in names if not name.startswith(".")]
        items = "".join(
            f'<li><a href="{html_escape.escape(urllib.parse.quote(name))}'
            f'{"/" if os.path.isdir(os.path.join(directory, name)) else ""}">'
            f"{html_escape.escape(name)}</a></li>" for name in names)
        title = html_escape.escape(url_path)
        return HTMLResponse(f"<!doctype html><title>{title}</title><h1>{title}</h1><ul>{items}</ul>")
