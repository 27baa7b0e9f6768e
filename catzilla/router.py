"""Catzilla 0.2.3's module path for RouterGroup (`from catzilla.router import RouterGroup`);
the routers themselves are in catzilla.routers."""
from .routers import APIRouter, Router, RouterGroup

__all__ = ["RouterGroup", "Router", "APIRouter"]
