"""The static directory loadtests/static_bench.sh serves (STATIC_BENCH_DIR)."""
import os

from catzilla import Catzilla

app = Catzilla()
app.mount_static("/static", os.environ["STATIC_BENCH_DIR"])
