"""Build configuration for the C extension; everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "catzilla._native",
            sources=["ext/native.c", "ext/headers.c", "ext/stats.c", "ext/exchange.c", "ext/responses.c",
                     "ext/request.c", "ext/binding.c", "ext/templates.c", "ext/accesslog.c",
                     "ext/inline.c", "ext/connection.c", "ext/chain.c", "ext/fields.c", "ext/cors.c",
                     "ext/pool.c", "ext/jsonresponse.c",
                     "ext/batch.c"],
            depends=["ext/native.h"],
            include_dirs=["ext"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers"],
        )
    ]
)
