/* An inline `async def` handler's outcome in one call: its coroutine driven to the end, the
 * result made a response, and the response's bytes.
 *
 * finish_inline() is what Executor.start's inline branch did in Python, step for step:
 *
 *     response = drive(coroutine)      # suspended after all: close it, RuntimeError
 *     if not isinstance(response, Response):
 *         response = to_response(response)
 *     data = None if response.streaming else response.encode(common, head_only)
 *
 * (the handler itself is called from Python: a coroutine made there costs no C-to-Python
 * call). encode() is `response.encode(common, head_only)`, where the usual response,
 * exactly a JSONResponse with the JSON media type and no header pairs, is encoded here as
 * the last line of JSONResponse.encode does it, without a Python frame. Both fall back on
 * the Python methods for everything else; tests/test_inline_native.py compares them.
 */
#include "native.h"

typedef struct {
    PyObject *response_type;   /* catzilla.responses.Response */
    PyObject *json_type;       /* catzilla.responses.JSONResponse */
    PyObject *status_lines;    /* catzilla.responses._STATUS_LINES: status -> status line */
    PyObject *to_response;     /* catzilla.responses.to_response */
    PyObject *json_media_type; /* "application/json" */
    PyObject *json_line;       /* b"content-type: application/json\r\n" */
    PyObject *empty;           /* b"" */
    PyObject *str_media_type, *str_raw_headers, *str_status_code, *str_body, *str_streaming;
    PyObject *str_encode, *str_close, *str_name;
} InlineState;

static InlineState istate;

/* The bytes of an exact JSONResponse with the JSON media type and no header pairs (as
 * JSONResponse.encode makes them); NULL without an error for any other response, whose own
 * encode() the caller asks. */
static PyObject *
encode_plain_json(PyObject *response, PyObject *common, int head_only)
{
    PyObject *media = NULL, *raw = NULL, *status = NULL, *body = NULL, *result = NULL;

    if (istate.json_type == NULL || Py_TYPE(response) != (PyTypeObject *)istate.json_type
            || !PyBytes_Check(common))
        return NULL;
    media = PyObject_GetAttr(response, istate.str_media_type);
    if (media == NULL)
        goto cleanup;
    int json = PyObject_RichCompareBool(media, istate.json_media_type, Py_EQ);
    if (json <= 0)
        goto cleanup; /* an error, or another type: Response.encode's way */
    raw = PyObject_GetAttr(response, istate.str_raw_headers);
    if (raw == NULL || !PyList_CheckExact(raw) || PyList_GET_SIZE(raw) != 0)
        goto cleanup;
    status = PyObject_GetAttr(response, istate.str_status_code);
    if (status == NULL || !PyLong_CheckExact(status))
        goto cleanup;
    PyObject *line = PyDict_GetItemWithError(istate.status_lines, status); /* borrowed */
    if (line == NULL || !PyBytes_Check(line))
        goto cleanup; /* a status without a line yet: status_line() makes (or refuses) it */
    body = PyObject_GetAttr(response, istate.str_body);
    if (body == NULL || !PyBytes_Check(body))
        goto cleanup;
    PyObject *const parts[5] = {line, common, istate.json_line, body, istate.empty};
    result = catzilla_response_bytes(parts, head_only);
cleanup:
    Py_XDECREF(media);
    Py_XDECREF(raw);
    Py_XDECREF(status);
    Py_XDECREF(body);
    return result;
}

/* response.encode(common, head_only), the usual JSON response without a Python frame. */
static PyObject *
encode_any(PyObject *response, PyObject *common, PyObject *head_only)
{
    int head = PyObject_IsTrue(head_only);
    if (head < 0)
        return NULL;
    PyObject *data = encode_plain_json(response, common, head);
    if (data != NULL || PyErr_Occurred())
        return data;
    PyObject *args[3] = {response, common, head_only};
    return PyObject_VectorcallMethod(istate.str_encode, args, 3, NULL);
}

/* encode(response, common, head_only) -> bytes */
static PyObject *
encode(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode(response, common, head_only)");
        return NULL;
    }
    return encode_any(args[0], args[1], args[2]);
}

/* A coroutine classified as unable to suspend did: closed, and the handler's bug said. */
static PyObject *
suspended(PyObject *coroutine, PyObject *route)
{
    PyObject *closed = PyObject_CallMethodNoArgs(coroutine, istate.str_close);
    if (closed == NULL)
        return NULL;
    Py_DECREF(closed);
    PyObject *name = PyObject_GetAttr(route, istate.str_name);
    if (name == NULL)
        return NULL;
    PyErr_Format(PyExc_RuntimeError, "handler %S suspended although it has no await", name);
    Py_DECREF(name);
    return NULL;
}

/* The coroutine driven to its end, made a response and encoded: (response, data | None). */
static PyObject *
finish(PyObject *coroutine, PyObject *route, PyObject *common, PyObject *head_only)
{
    PyObject *response = NULL, *data = NULL, *result = NULL;
    PySendResult sent = PyIter_Send(coroutine, Py_None, &response);
    if (sent == PYGEN_ERROR)
        return NULL;
    if (sent == PYGEN_NEXT) {
        Py_CLEAR(response); /* what it yielded */
        return suspended(coroutine, route);
    }
    if (!PyObject_TypeCheck(response, (PyTypeObject *)istate.response_type)) {
        Py_SETREF(response, PyObject_CallOneArg(istate.to_response, response));
        if (response == NULL)
            goto cleanup;
    }
    if (Py_TYPE(response) == (PyTypeObject *)istate.json_type) {
        /* JSONResponse never streams: its bytes, whichever way they are made */
        data = encode_any(response, common, head_only);
    }
    else {
        PyObject *streaming = PyObject_GetAttr(response, istate.str_streaming);
        if (streaming == NULL)
            goto cleanup;
        int streams = PyObject_IsTrue(streaming);
        Py_DECREF(streaming);
        if (streams < 0)
            goto cleanup;
        data = streams ? Py_NewRef(Py_None) : encode_any(response, common, head_only);
    }
    if (data == NULL)
        goto cleanup;
    result = PyTuple_Pack(2, response, data);
cleanup:
    Py_XDECREF(response);
    Py_XDECREF(data);
    return result;
}

/* finish_inline(coroutine, route, common, head_only) -> (response, data | None) */
static PyObject *
finish_inline(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "finish_inline(coroutine, route, common, head_only)");
        return NULL;
    }
    if (istate.response_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "catzilla.responses has not registered its classes");
        return NULL;
    }
    return finish(args[0], args[1], args[2], args[3]);
}

/* register_responses(Response, JSONResponse, status_lines, to_response): called once by
 * catzilla.responses, whose classes and table the functions above use. */
static PyObject *
register_responses(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyDict_Check(args[2])
            || !PyCallable_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "register_responses(Response, JSONResponse, status_lines: dict, to_response)");
        return NULL;
    }
    Py_XSETREF(istate.response_type, Py_NewRef(args[0]));
    Py_XSETREF(istate.json_type, Py_NewRef(args[1]));
    Py_XSETREF(istate.status_lines, Py_NewRef(args[2]));
    Py_XSETREF(istate.to_response, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

static PyMethodDef inline_functions[] = {
    {"finish_inline", (PyCFunction)(void (*)(void))finish_inline, METH_FASTCALL,
     "finish_inline(coroutine, route, common, head_only) -> (response, data or None): the "
     "coroutine driven to its end, its result made a response and encoded."},
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(response, common, head_only) -> bytes: response.encode(common, head_only)."},
    {"register_responses", (PyCFunction)(void (*)(void))register_responses, METH_FASTCALL,
     "register_responses(Response, JSONResponse, status_lines, to_response)"},
    {NULL},
};

int
catzilla_inline_init(PyObject *module)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&istate.json_media_type, "application/json"}, {&istate.str_media_type, "media_type"},
        {&istate.str_raw_headers, "raw_headers"}, {&istate.str_status_code, "status_code"},
        {&istate.str_body, "body"}, {&istate.str_streaming, "streaming"}, {&istate.str_encode, "encode"},
        {&istate.str_close, "close"}, {&istate.str_name, "name"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (catzilla_intern(names[i].slot, names[i].text) < 0)
            return -1;
    }
    istate.json_line = PyBytes_FromString("content-type: application/json\r\n");
    istate.empty = PyBytes_FromStringAndSize(NULL, 0);
    if (istate.json_line == NULL || istate.empty == NULL)
        return -1;
    return PyModule_AddFunctions(module, inline_functions);
}
