/* A compiled chain's request in one call (Executor.start_pipeline's inline branch): the
 * chain run in a copy of the current context, and its response's bytes, header fields
 * included. run_chain() is, step for step,
 *
 *     response = contextvars.copy_context().run(run_inline, request)
 *     data = None if response.streaming else response.encode(common, head_only)
 *
 * A chain's response mostly carries fields its hooks and middleware added (CORS, an
 * after-hook's header): an exact JSONResponse with the JSON media type is encoded here as
 * JSONResponse.encode does it, each pair's line taken from responses._LINES (a miss asks
 * responses._line, which checks the pair and caches its line). Anything else (another
 * class, a status without a line yet, a pair that is not a tuple) is asked its own
 * encode(). tests/test_chain_native.py compares the two.
 */
#include "native.h"

#include <string.h>

/* Pairs whose lines are held on the stack; more take a heap array. */
#define FEW_PAIRS 8

typedef struct {
    PyObject *json_type;       /* catzilla.responses.JSONResponse */
    PyObject *status_lines;    /* catzilla.responses._STATUS_LINES: status -> status line */
    PyObject *lines;           /* catzilla.responses._LINES: pair -> (line, is content-type) */
    PyObject *line;            /* catzilla.responses._line: pair -> (line, is content-type) */
    PyObject *json_media_type; /* "application/json" */
    PyObject *json_line;       /* b"content-type: application/json\r\n" */
    PyObject *empty;           /* b"" */
    PyObject *str_media_type, *str_raw_headers, *str_status_code, *str_body, *str_streaming;
    PyObject *str_encode;
} ChainState;

static ChainState cstate;

/* The line of one pair (a new reference) and whether it is the content-type; NULL with
 * *fallback set when the pair is not a tuple (Python's own encode decides about it). */
static PyObject *
pair_line(PyObject *pair, int *typed, int *fallback)
{
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
        *fallback = 1;
        return NULL;
    }
    PyObject *known = PyDict_GetItemWithError(cstate.lines, pair); /* borrowed */
    if (known != NULL)
        Py_INCREF(known);
    else if (PyErr_Occurred())
        return NULL;
    else if ((known = PyObject_CallOneArg(cstate.line, pair)) == NULL)
        return NULL;
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(known, 0))) {
        Py_DECREF(known);
        PyErr_SetString(PyExc_TypeError, "a header line must be (bytes, bool)");
        return NULL;
    }
    int is_type = PyObject_IsTrue(PyTuple_GET_ITEM(known, 1));
    if (is_type < 0) {
        Py_DECREF(known);
        return NULL;
    }
    *typed |= is_type;
    PyObject *line = Py_NewRef(PyTuple_GET_ITEM(known, 0));
    Py_DECREF(known);
    return line;
}

/* The pairs' lines joined (a new reference) and whether one is the content-type: the
 * Python's `b"".join(encode_pairs(raw)[0])`. NULL with *fallback set: not for us. */
static PyObject *
joined_lines(PyObject *raw, int *typed, int *fallback)
{
    Py_ssize_t n = PyList_GET_SIZE(raw), total = 0, done = 0;
    if (n == 0)
        return Py_NewRef(cstate.empty);
    PyObject *few[FEW_PAIRS];
    PyObject **lines = n <= FEW_PAIRS ? few : PyMem_New(PyObject *, (size_t)n);
    PyObject *result = NULL;
    if (lines == NULL)
        return PyErr_NoMemory();
    for (; done < n; done++) {
        if (PyList_GET_SIZE(raw) != n) { /* _line cannot change it; still, never read past */
            PyErr_SetString(PyExc_RuntimeError, "response headers changed while encoded");
            goto cleanup;
        }
        lines[done] = pair_line(PyList_GET_ITEM(raw, done), typed, fallback);
        if (lines[done] == NULL)
            goto cleanup;
        Py_ssize_t size = PyBytes_GET_SIZE(lines[done]);
        if (size > PY_SSIZE_T_MAX - total) {
            Py_DECREF(lines[done]);
            PyErr_NoMemory();
            goto cleanup;
        }
        total += size;
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL)
        goto cleanup;
    char *p = PyBytes_AS_STRING(result);
    for (Py_ssize_t i = 0; i < n; i++) {
        memcpy(p, PyBytes_AS_STRING(lines[i]), (size_t)PyBytes_GET_SIZE(lines[i]));
        p += PyBytes_GET_SIZE(lines[i]);
    }
cleanup:
    for (Py_ssize_t i = 0; i < done; i++)
        Py_DECREF(lines[i]);
    if (lines != few)
        PyMem_Free(lines);
    return result;
}

/* JSONResponse.encode for an exact JSONResponse with the JSON media type, its header pairs
 * included; NULL without an error for anything else (the caller asks its encode()). */
static PyObject *
encode_json(PyObject *response, PyObject *common, int head_only)
{
    PyObject *media = NULL, *raw = NULL, *status = NULL, *body = NULL, *after = NULL, *result = NULL;
    int typed = 0, fallback = 0;

    if (Py_TYPE(response) != (PyTypeObject *)cstate.json_type || !PyBytes_Check(common))
        return NULL;
    media = PyObject_GetAttr(response, cstate.str_media_type);
    if (media == NULL)
        goto cleanup;
    int json = PyObject_RichCompareBool(media, cstate.json_media_type, Py_EQ);
    if (json <= 0)
        goto cleanup; /* an error, or another type: Response.encode's way */
    raw = PyObject_GetAttr(response, cstate.str_raw_headers);
    if (raw == NULL || !PyList_CheckExact(raw))
        goto cleanup;
    status = PyObject_GetAttr(response, cstate.str_status_code);
    if (status == NULL || !PyLong_CheckExact(status))
        goto cleanup;
    PyObject *line = PyDict_GetItemWithError(cstate.status_lines, status); /* borrowed */
    if (line == NULL || !PyBytes_Check(line))
        goto cleanup; /* a status without a line yet: status_line() makes (or refuses) it */
    if (PyList_GET_SIZE(raw) != 0) {
        /* (the table only has final statuses: 200 and up) */
        long code = PyLong_AsLong(status);
        if (code == -1 && PyErr_Occurred())
            goto cleanup;
        if (code == 204 || code == 304)
            goto cleanup; /* no content: Response.encode's way */
    }
    body = PyObject_GetAttr(response, cstate.str_body);
    if (body == NULL || !PyBytes_Check(body))
        goto cleanup;
    Py_INCREF(line); /* held across _line's calls, which may grow the table */
    after = joined_lines(raw, &typed, &fallback);
    if (after != NULL) {
        PyObject *const parts[5] = {line, common, typed ? cstate.empty : cstate.json_line, body, after};
        result = catzilla_response_bytes(parts, head_only);
    }
    Py_DECREF(line);
cleanup:
    Py_XDECREF(media);
    Py_XDECREF(raw);
    Py_XDECREF(status);
    Py_XDECREF(body);
    Py_XDECREF(after);
    return result;
}

/* `None if response.streaming else response.encode(common, head_only)`. */
static PyObject *
encode_answer(PyObject *response, PyObject *common, PyObject *head_only)
{
    int head = PyObject_IsTrue(head_only);
    if (head < 0)
        return NULL;
    PyObject *data = encode_json(response, common, head);
    if (data != NULL || PyErr_Occurred())
        return data;
    if (Py_TYPE(response) != (PyTypeObject *)cstate.json_type) { /* JSONResponse never streams */
        PyObject *streaming = PyObject_GetAttr(response, cstate.str_streaming);
        if (streaming == NULL)
            return NULL;
        int streams = PyObject_IsTrue(streaming);
        Py_DECREF(streaming);
        if (streams < 0)
            return NULL;
        if (streams)
            Py_RETURN_NONE;
    }
    PyObject *args[3] = {response, common, head_only};
    return PyObject_VectorcallMethod(cstate.str_encode, args, 3, NULL);
}

static int
registered(void)
{
    if (cstate.json_type != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "catzilla.responses has not registered its encoding");
    return 0;
}

/* encode_answer(response, common, head_only) -> bytes | None (a stream) */
static PyObject *
encode_answer_py(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_answer(response, common, head_only)");
        return NULL;
    }
    if (!registered())
        return NULL;
    return encode_answer(args[0], args[1], args[2]);
}

/* run_chain(run_inline, request, common, head_only) -> (response, data | None) */
static PyObject *
run_chain(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "run_chain(run_inline, request, common, head_only)");
        return NULL;
    }
    return catzilla_run_chain(args[0], args[1], args[2], args[3]);
}

/* The same, called from C (ext/connection.c, for a route of Executor.straight). */
PyObject *
catzilla_run_chain(PyObject *chain, PyObject *request, PyObject *common, PyObject *head_only)
{
    if (!registered())
        return NULL;
    /* contextvars.Context.run's steps: what the chain sets stays with its request */
    PyObject *context = PyContext_CopyCurrent();
    if (context == NULL)
        return NULL;
    if (PyContext_Enter(context) < 0) {
        Py_DECREF(context);
        return NULL;
    }
    PyObject *response = PyObject_CallOneArg(chain, request);
    if (PyContext_Exit(context) < 0)
        Py_CLEAR(response);
    Py_DECREF(context);
    if (response == NULL)
        return NULL;
    PyObject *data = encode_answer(response, common, head_only);
    PyObject *result = data == NULL ? NULL : PyTuple_Pack(2, response, data);
    Py_DECREF(response);
    Py_XDECREF(data);
    return result;
}

/* register_encoding(JSONResponse, status_lines, lines, line): called once by
 * catzilla.responses, whose class, tables and line maker the functions above use. */
static PyObject *
register_encoding(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyType_Check(args[0]) || !PyDict_Check(args[1]) || !PyDict_Check(args[2])
            || !PyCallable_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "register_encoding(JSONResponse, status_lines: dict, lines: dict, line)");
        return NULL;
    }
    Py_XSETREF(cstate.json_type, Py_NewRef(args[0]));
    Py_XSETREF(cstate.status_lines, Py_NewRef(args[1]));
    Py_XSETREF(cstate.lines, Py_NewRef(args[2]));
    Py_XSETREF(cstate.line, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

static PyMethodDef chain_functions[] = {
    {"run_chain", (PyCFunction)(void (*)(void))run_chain, METH_FASTCALL,
     "run_chain(run_inline, request, common, head_only) -> (response, data or None): the chain "
     "run in a copy of the current context, its response encoded."},
    {"encode_answer", (PyCFunction)(void (*)(void))encode_answer_py, METH_FASTCALL,
     "encode_answer(response, common, head_only) -> bytes, or None for a stream: "
     "response.encode(common, head_only)."},
    {"register_encoding", (PyCFunction)(void (*)(void))register_encoding, METH_FASTCALL,
     "register_encoding(JSONResponse, status_lines, lines, line)"},
    {NULL},
};

int
catzilla_chain_init(PyObject *module)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&cstate.json_media_type, "application/json"}, {&cstate.str_media_type, "media_type"},
        {&cstate.str_raw_headers, "raw_headers"}, {&cstate.str_status_code, "status_code"},
        {&cstate.str_body, "body"}, {&cstate.str_streaming, "streaming"}, {&cstate.str_encode, "encode"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (catzilla_intern(names[i].slot, names[i].text) < 0)
            return -1;
    }
    cstate.json_line = PyBytes_FromString("content-type: application/json\r\n");
    cstate.empty = PyBytes_FromStringAndSize(NULL, 0);
    if (cstate.json_line == NULL || cstate.empty == NULL)
        return -1;
    return PyModule_AddFunctions(module, chain_functions);
}
