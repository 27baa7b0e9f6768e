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
 *   request.c  the fields of a Request, made in one call by the header collector
 *   binding.c  handler arguments from path segments and the query string, for plain handlers
 *   templates.c path templates matched segment by segment
 *   accesslog.c the access log's lines, formatted into one buffer
 *   inline.c   an inline `async def` handler's outcome, driven and encoded in one call
 *   connection.c the state of an HTTP/1.1 connection, and the usual request's way through it
 *   chain.c    a compiled chain run and its response (header fields too) encoded in one call
 *   fields.c   a response's header view, and setting a field in it
 *   cors.c     CORSMiddleware's halves on their usual paths
 *   pool.c     the thread pool's hand-off both ways, and a def handler's job
 */
#ifndef CATZILLA_NATIVE_H
#define CATZILLA_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

int catzilla_headers_init(PyObject *module);
int catzilla_stats_init(PyObject *module);
int catzilla_exchange_init(PyObject *module);
int catzilla_responses_init(PyObject *module);
int catzilla_request_init(PyObject *module);
int catzilla_binding_init(PyObject *module);
int catzilla_templates_init(PyObject *module);
int catzilla_accesslog_init(PyObject *module);
int catzilla_inline_init(PyObject *module);
int catzilla_connection_init(PyObject *module);
int catzilla_chain_init(PyObject *module);
int catzilla_fields_init(PyObject *module);
int catzilla_cors_init(PyObject *module);
int catzilla_pool_init(PyObject *module);
int catzilla_jsonresponse_init(PyObject *module);
int catzilla_batch_init(PyObject *module);

/* exchange.c: Exchange(connection, request, route, common, head_only, keep_alive, row, started). */
PyObject *catzilla_exchange_new(PyObject *const fields[8]);
/* batch.c: defer a straight route's request to the loop turn's InlineBatch. */
int catzilla_batch_add(PyObject *batch, PyObject *exchange, PyObject *how);
/* binding.c: is it a PlainInvoke? */
int catzilla_is_plain_invoke(PyObject *obj);
/* connection.c: a deferred request handed to the pool, run to its outcome, its outcome written. */
PyObject *catzilla_inline_hand_off(PyObject *exchange, PyObject *how);
PyObject *catzilla_inline_outcome(PyObject *exchange, PyObject *how);
PyObject *catzilla_inline_complete(PyObject *exchange, PyObject *outcome);
/* chain.c: run_chain(run_inline, request, common, head_only) -> (response, data | None). */
PyObject *catzilla_run_chain(PyObject *chain, PyObject *request, PyObject *common, PyObject *head_only);

/* Its fields in place, in this order, when obj is an Exchange (a field may be NULL: deleted);
 * NULL for anything else, whose fields are read as attributes. */
enum { EX_CONNECTION, EX_REQUEST, EX_ROUTE, EX_COMMON, EX_HEAD_ONLY, EX_KEEP_ALIVE, EX_ROW, EX_STARTED,
       EX_OWED, EX_TASK, EX_RESPONSE, EX_DATA };
PyObject **catzilla_exchange_slots(PyObject *obj);

/* request.c: the Request class (set by catzilla.request), and one request made of it. */
PyTypeObject *catzilla_request_class(void);
PyObject *catzilla_make_request(PyTypeObject *type, PyObject *method, PyObject *path, PyObject *query,
                                PyObject *header_items, PyObject *header_map, PyObject *body,
                                PyObject *client, PyObject *version);

/* headers.c: percent-decoding (`plus`: '+' is a space) into `dst` of at least n bytes; the
 * same as text (UTF-8, invalid bytes replaced); a query string's bytes (str or bytes). */
Py_ssize_t unescape(const char *src, Py_ssize_t n, char *dst, int plus);
PyObject *decode_component(const char *src, Py_ssize_t n, char *scratch, int plus);
int query_bytes(PyObject *query, const char **data, Py_ssize_t *n);
/* An interned str in a static slot, for the names a module looks attributes up by. */
static inline int
catzilla_intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

/* The exception being raised, taken (none is set after), normalised, with its traceback
 * attached: a new reference (None if there was none). */
static inline PyObject *
catzilla_take_exception(void)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL)
        PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value != NULL ? value : Py_NewRef(Py_None);
}

/* responses.c: status_line + common + before + content-length + after + CRLF + body, from
 * parts = {status_line, common, before, body, after}, all bytes; no body when head_only. */
PyObject *catzilla_response_bytes(PyObject *const parts[5], int head_only);

/* fields.c: whether `name` is bytes equal to `wanted` (bytes) once both are lower-cased as
 * bytes.lower() does (ASCII letters only); a str name never is (str.lower() == bytes is
 * False), as the Python comparisons of raw header pairs say. */
int catzilla_same_field_name(PyObject *name, PyObject *wanted);

#endif
