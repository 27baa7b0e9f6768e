"""The file tree tests/test_responses.py and tests/test_static.py serve (responses_app.py)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

BIG_SIZE = 3 * 1024 * 1024 + 17  # several sendfile calls and socket-buffer waits, odd length


def big_content() -> bytes:
    block = bytes(range(256)) * 4096
    return (block * (BIG_SIZE // len(block) + 1))[:BIG_SIZE]


def make_tree(root: Path) -> Path:
    """root/secret.txt stays outside; root/public is what the app serves."""
    (root / "secret.txt").write_text("TOP SECRET\n")
    public = root / "public"
    (public / "sub").mkdir(parents=True)
    (public / "hello.txt").write_text("hello world\n")
    (public / "sub" / "index.html").write_text("<h1>index</h1>\n")
    (public / "sub" / "page.txt").write_text("in sub\n")
    (public / "404.html").write_text("<h1>custom not found</h1>\n")
    (public / ".hidden").write_text("hidden\n")
    (public / "big.bin").write_bytes(big_content())
    script = b"console.log('hello');\n" * 50
    (public / "app.js").write_bytes(script)
    (public / "app.js.gz").write_bytes(gzip.compress(script))
    (public / "app.js.br").write_bytes(b"BROTLI-BYTES")  # never decoded by the tests
    (public / "style.css").write_bytes(b"body{}\n" * 20)
    (public / "style.css.gz").write_bytes(gzip.compress(b"body{}\n" * 20))
    os.symlink(root / "secret.txt", public / "link-out")
    os.symlink(public / "hello.txt", public / "link-in")
    return public
