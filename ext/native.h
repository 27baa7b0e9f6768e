/* catzilla._native: the parts of the request path written in C.
 *
 * One extension module assembled from separate translation units, each adding its own
 * functions and types to the module:
 *   headers.c  request-head collection and parsing (httptools callbacks, query, cookies,
 *              Content-Type), validated as RFC 9110 says
 *   stats.c    per-worker counters in a shared-memory block, summed by any reader
 *   exchange.c the record of one request in flight (catzilla/worker/exchange.py), and
 *              driving a coroutine that cannot suspend
 *   responses.c a response's bytes in one buffer
 */
#ifndef CATZILLA_NATIVE_H
#define CATZILLA_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

int catzilla_headers_init(PyObject *module);
int catzilla_stats_init(PyObject *module);
int catzilla_exchange_init(PyObject *module);
int catzilla_responses_init(PyObject *module);

#endif
