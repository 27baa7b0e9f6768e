"""An app module that fails while it is imported (tests/test_master.py)."""
import catzilla_no_such_dependency_xyz  # noqa: F401  (ModuleNotFoundError on import)

from catzilla import Catzilla

app = Catzilla()
