"""Middleware: `BaseHTTPMiddleware` and the built-in ones, at Starlette's module paths."""
from .base import BaseHTTPMiddleware, CallNext, Middleware, PhasedMiddleware
from .cors import CORSMiddleware
from .gzip import GZipMiddleware
from .hooks import ZeroAllocMiddleware
from .request_id import RequestIDMiddleware
from .trustedhost import TrustedHostMiddleware

__all__ = [
    "BaseHTTPMiddleware", "CallNext", "Middleware", "PhasedMiddleware",
    "CORSMiddleware", "GZipMiddleware", "RequestIDMiddleware", "TrustedHostMiddleware",
    "ZeroAllocMiddleware",
]
