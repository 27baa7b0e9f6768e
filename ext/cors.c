/* CORSMiddleware's two halves on their usual paths, without a Python frame each (see
 * catzilla/middleware/cors.py, whose on_request and on_response stay the reference and do
 * everything else: tests/test_cors_native.py compares the two).
 *
 * on_request(request): the request's Origin from the server's header map, or None; a
 *   request built by hand (no map) and an OPTIONS with an Origin (maybe a preflight) go to
 *   the Python.
 * on_response(request, response, origin): with no Origin, `Vary: Origin` appended when the
 *   answer depends on the origin and the response has no Vary yet; with a listed origin,
 *   its pairs (made once by the middleware) appended when the response has none of the
 *   middleware's fields yet. Anything else (a Vary to merge, a field to replace, an origin
 *   not listed) goes to the Python.
 */
#include "native.h"

typedef struct {
    PyObject_HEAD
    PyObject *middleware; /* the CORSMiddleware: its Python halves */
    PyObject *listed;     /* dict: listed origin -> the pairs its response gets */
    PyObject *own;        /* tuple of the lower-cased names of the fields the middleware sets */
    PyObject *vary;       /* (b"Vary", b"Origin") */
    int explicit_origin;  /* the answer depends on the origin: Vary: Origin on every response */
} CorsPhases;

static PyObject *str_header_map, *str_method, *str_raw_headers, *str_on_request, *str_on_response;
static PyObject *str_origin, *str_options, *bytes_vary;

static int
cors_traverse(CorsPhases *self, visitproc visit, void *arg)
{
    Py_VISIT(self->middleware);
    Py_VISIT(self->listed);
    Py_VISIT(self->own);
    Py_VISIT(self->vary);
    return 0;
}

static int
cors_clear(CorsPhases *self)
{
    Py_CLEAR(self->middleware);
    Py_CLEAR(self->listed);
    Py_CLEAR(self->own);
    Py_CLEAR(self->vary);
    return 0;
}

static void
cors_dealloc(CorsPhases *self)
{
    PyObject_GC_UnTrack(self);
    cors_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* CorsPhases(middleware, listed: dict, own: tuple of bytes, vary: (bytes, bytes), explicit_origin) */
static PyObject *
cors_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *middleware, *listed, *own, *vary;
    int explicit_origin;
    if (!PyArg_ParseTuple(args, "OO!O!O!p:CorsPhases", &middleware, &PyDict_Type, &listed, &PyTuple_Type, &own,
                          &PyTuple_Type, &vary, &explicit_origin))
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(own); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(own, i))) {
            PyErr_SetString(PyExc_TypeError, "CorsPhases: own names must be bytes");
            return NULL;
        }
    }
    CorsPhases *self = (CorsPhases *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->middleware = Py_NewRef(middleware);
    self->listed = Py_NewRef(listed);
    self->own = Py_NewRef(own);
    self->vary = Py_NewRef(vary);
    self->explicit_origin = explicit_origin;
    return (PyObject *)self;
}

static PyObject *
cors_on_request(CorsPhases *self, PyObject *request)
{
    PyObject *mapping = PyObject_GetAttr(request, str_header_map);
    if (mapping == NULL)
        return NULL;
    if (!PyDict_CheckExact(mapping)) { /* built by hand: get_header's way */
        Py_DECREF(mapping);
        return PyObject_CallMethodOneArg(self->middleware, str_on_request, request);
    }
    PyObject *origin = PyDict_GetItemWithError(mapping, str_origin); /* borrowed */
    if (origin == NULL) {
        Py_DECREF(mapping);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(origin);
    Py_DECREF(mapping);
    PyObject *method = PyObject_GetAttr(request, str_method);
    if (method == NULL) {
        Py_DECREF(origin);
        return NULL;
    }
    int options = PyObject_RichCompareBool(method, str_options, Py_EQ);
    Py_DECREF(method);
    if (options != 0) { /* an error, or maybe a preflight */
        Py_DECREF(origin);
        return options < 0 ? NULL : PyObject_CallMethodOneArg(self->middleware, str_on_request, request);
    }
    return origin;
}

/* Whether a field in `fields` (all (name, value) tuples, else -1) is named one of `names`. */
static int
has_field(PyObject *fields, PyObject *const *names, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(fields); i++) {
        PyObject *item = PyList_GET_ITEM(fields, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2)
            return -1;
        for (Py_ssize_t k = 0; k < count; k++) {
            if (catzilla_same_field_name(PyTuple_GET_ITEM(item, 0), names[k]))
                return 1;
        }
    }
    return 0;
}

static PyObject *
cors_on_response(CorsPhases *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "on_response(request, response, origin)");
        return NULL;
    }
    PyObject *response = args[1], *origin = args[2], *added = NULL;
    PyObject *fields = PyObject_GetAttr(response, str_raw_headers);
    if (fields == NULL)
        return NULL;
    if (!PyList_CheckExact(fields))
        goto python;
    if (origin == Py_None) {
        if (!self->explicit_origin)
            goto done;
        int present = has_field(fields, &bytes_vary, 1);
        if (present != 0)
            goto python; /* a Vary to merge with, or not a list of pairs */
        if (PyList_Append(fields, self->vary) < 0)
            goto error;
        goto done;
    }
    if (!PyUnicode_CheckExact(origin))
        goto python;
    added = PyDict_GetItemWithError(self->listed, origin); /* borrowed */
    if (added == NULL) {
        if (PyErr_Occurred())
            goto error;
        goto python; /* not listed: a regex, or "*" */
    }
    if (!PyTuple_CheckExact(added))
        goto python;
    int present = has_field(fields, &PyTuple_GET_ITEM(self->own, 0), PyTuple_GET_SIZE(self->own));
    if (present != 0)
        goto python; /* ours to replace or merge, or not a list of pairs */
    Py_ssize_t n = PyList_GET_SIZE(fields);
    if (PyList_SetSlice(fields, n, n, added) < 0)
        goto error;
done:
    Py_DECREF(fields);
    return Py_NewRef(response);
python:
    Py_DECREF(fields);
    {
        PyObject *call[4] = {self->middleware, args[0], args[1], args[2]};
        return PyObject_VectorcallMethod(str_on_response, call, 4, NULL);
    }
error:
    Py_DECREF(fields);
    return NULL;
}

static PyMethodDef cors_methods[] = {
    {"on_request", (PyCFunction)cors_on_request, METH_O,
     "on_request(request) -> the Origin, None, or a preflight's answer (CORSMiddleware.on_request)."},
    {"on_response", (PyCFunction)(void (*)(void))cors_on_response, METH_FASTCALL,
     "on_response(request, response, origin) -> response (CORSMiddleware.on_response)."},
    {NULL},
};

static PyTypeObject CorsPhasesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.CorsPhases",
    .tp_doc = "CORSMiddleware's halves on their usual paths, in C.",
    .tp_basicsize = sizeof(CorsPhases),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = cors_new,
    .tp_traverse = (traverseproc)cors_traverse,
    .tp_clear = (inquiry)cors_clear,
    .tp_dealloc = (destructor)cors_dealloc,
    .tp_methods = cors_methods,
};

int
catzilla_cors_init(PyObject *module)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&str_header_map, "_header_map"}, {&str_method, "method"}, {&str_raw_headers, "raw_headers"},
        {&str_on_request, "on_request"}, {&str_on_response, "on_response"}, {&str_origin, "origin"},
        {&str_options, "OPTIONS"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (catzilla_intern(names[i].slot, names[i].text) < 0)
            return -1;
    }
    bytes_vary = PyBytes_FromString("vary");
    if (bytes_vary == NULL || PyType_Ready(&CorsPhasesType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "CorsPhases", (PyObject *)&CorsPhasesType);
}
