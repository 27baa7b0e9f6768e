/* A response's bytes in one buffer: status line, the common header lines (server, date,
 * connection), content-length, the response's own header lines and the body, measured once
 * and copied once (what `b"%s%s..." % (...)` does by parsing its format on every call). */
#include "native.h"

#include <string.h>

#define LENGTH_NAME "content-length: "

/* status_line + common + before + "content-length: N\r\n" + after + "\r\n" + body, from
 * parts = {status_line, common, before, body, after}, every one of them bytes (the caller
 * checks), with N the body's length and no body for HEAD (`head_only`). */
PyObject *
catzilla_response_bytes(PyObject *const parts[5], int head_only)
{
    Py_ssize_t body_len = PyBytes_GET_SIZE(parts[3]);
    /* "content-length: N\r\n", the digits written backwards from the end (no snprintf:
     * its format parsing costs more than the rest of this function). */
    char length[48];
    char *end = length + sizeof(length), *q = end;
    *--q = '\n';
    *--q = '\r';
    Py_ssize_t n = body_len;
    do {
        *--q = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    q -= sizeof(LENGTH_NAME) - 1;
    memcpy(q, LENGTH_NAME, sizeof(LENGTH_NAME) - 1);
    Py_ssize_t length_len = end - q;
    Py_ssize_t total = length_len + 2;
    for (int i = 0; i < 5; i++) {
        Py_ssize_t size = (i == 3 && head_only) ? 0 : PyBytes_GET_SIZE(parts[i]);
        if (size > PY_SSIZE_T_MAX - total)
            return PyErr_NoMemory();
        total += size;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
#define PUT(src, n) do { memcpy(p, (src), (size_t)(n)); p += (n); } while (0)
    PUT(PyBytes_AS_STRING(parts[0]), PyBytes_GET_SIZE(parts[0]));
    PUT(PyBytes_AS_STRING(parts[1]), PyBytes_GET_SIZE(parts[1]));
    PUT(PyBytes_AS_STRING(parts[2]), PyBytes_GET_SIZE(parts[2]));
    PUT(q, length_len);
    PUT(PyBytes_AS_STRING(parts[4]), PyBytes_GET_SIZE(parts[4]));
    PUT("\r\n", 2);
    if (!head_only)
        PUT(PyBytes_AS_STRING(parts[3]), body_len);
#undef PUT
    return out;
}

/* encode_response(status_line, common, before, body, after, head_only) -> bytes:
 *   status_line + common + before + "content-length: N\r\n" + after + "\r\n" + body
 * with N the body's length, and no body for HEAD (`head_only`). */
static PyObject *
encode_response(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_response(status_line, common, before, body, after, head_only)");
        return NULL;
    }
    PyObject *parts[5] = {args[0], args[1], args[2], args[3], args[4]};
    for (int i = 0; i < 5; i++) {
        if (!PyBytes_Check(parts[i])) {
            PyErr_Format(PyExc_TypeError, "encode_response() argument %d must be bytes", i + 1);
            return NULL;
        }
    }
    int head_only = PyObject_IsTrue(args[5]);
    if (head_only < 0)
        return NULL;
    return catzilla_response_bytes(parts, head_only);
}

static PyMethodDef response_functions[] = {
    {"encode_response", (PyCFunction)(void (*)(void))encode_response, METH_FASTCALL,
     "encode_response(status_line, common, before, body, after, head_only) -> bytes"},
    {NULL},
};

int
catzilla_responses_init(PyObject *module)
{
    return PyModule_AddFunctions(module, response_functions);
}
