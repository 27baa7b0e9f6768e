/* A response's header view without a Python frame on its usual path (see
 * catzilla/response_headers.py): `response.headers` and `headers[name] = value`, what an
 * after-hook or a middleware does on every request it touches.
 *
 * HeaderFields is MutableHeaders' base: it holds the raw (name, value) list (`_list`) and
 * does item assignment and deletion. Setting a str name to a str value is done here exactly
 * as response_headers.set_item does it (latin-1 bytes; the first field of that name,
 * compared ASCII-case-insensitively as bytes.lower() does, takes the value and any later
 * ones go; else the pair is appended); anything else (other types, a list holding something
 * other than (name, value) tuples) and every deletion calls the Python functions registered
 * by response_headers, which stay the reference: tests/test_fields_native.py compares them.
 *
 * headers_of(response) makes the view of response.raw_headers, the getter of the
 * `headers` property.
 */
#include "native.h"

#include <string.h>
#include "structmember.h"

typedef struct {
    PyObject_HEAD
    PyObject *list; /* the response's raw_headers (the view edits it, never copies it) */
} HeaderFields;

static struct {
    PyTypeObject *view_type; /* catzilla.response_headers.MutableHeaders */
    PyObject *set_item;      /* response_headers.set_item(view, name, value) */
    PyObject *del_item;      /* response_headers.del_item(view, name) */
    PyObject *str_raw_headers;
} fstate;

static int
fields_traverse(HeaderFields *self, visitproc visit, void *arg)
{
    Py_VISIT(self->list);
    return 0;
}

static int
fields_clear(HeaderFields *self)
{
    Py_CLEAR(self->list);
    return 0;
}

static void
fields_dealloc(HeaderFields *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->list);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static unsigned char
ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

int
catzilla_same_field_name(PyObject *name, PyObject *wanted)
{
    if (!PyBytes_Check(name) || PyBytes_GET_SIZE(name) != PyBytes_GET_SIZE(wanted))
        return 0;
    const unsigned char *a = (const unsigned char *)PyBytes_AS_STRING(name);
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(wanted);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(wanted); i++) {
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return 0;
    }
    return 1;
}

/* set_field(fields, pair) for a list of (name, value) tuples; 1 when the list holds
 * something else (nothing changed: the Python does it), -1 on an error. */
static int
set_pair(PyObject *fields, PyObject *pair)
{
    Py_ssize_t n = PyList_GET_SIZE(fields), found = -1;
    PyObject *wanted = PyTuple_GET_ITEM(pair, 0);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(fields, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2)
            return 1;
        if (found < 0 && catzilla_same_field_name(PyTuple_GET_ITEM(item, 0), wanted))
            found = i;
    }
    if (found < 0)
        return PyList_Append(fields, pair);
    Py_ssize_t later = 0;
    for (Py_ssize_t i = found + 1; i < n; i++)
        later += catzilla_same_field_name(PyTuple_GET_ITEM(PyList_GET_ITEM(fields, i), 0), wanted);
    if (PyList_SetItem(fields, found, Py_NewRef(pair)) < 0)
        return -1;
    if (later == 0)
        return 0;
    PyObject *rest = PyList_New(0);
    if (rest == NULL)
        return -1;
    for (Py_ssize_t i = found + 1; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(fields, i);
        if (!catzilla_same_field_name(PyTuple_GET_ITEM(item, 0), wanted) && PyList_Append(rest, item) < 0) {
            Py_DECREF(rest);
            return -1;
        }
    }
    int status = PyList_SetSlice(fields, found + 1, n, rest);
    Py_DECREF(rest);
    return status;
}

static int
fields_ass_subscript(HeaderFields *self, PyObject *key, PyObject *value)
{
    PyObject *result;
    if (fstate.set_item == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "catzilla.response_headers has not registered its functions");
        return -1;
    }
    if (value == NULL) {
        result = PyObject_CallFunctionObjArgs(fstate.del_item, (PyObject *)self, key, NULL);
        goto python;
    }
    if (!PyUnicode_CheckExact(key) || !PyUnicode_CheckExact(value) || self->list == NULL
            || !PyList_CheckExact(self->list))
        goto fallback;
    PyObject *name = PyUnicode_AsLatin1String(key);
    if (name == NULL)
        return -1;
    PyObject *raw = PyUnicode_AsLatin1String(value);
    if (raw == NULL) {
        Py_DECREF(name);
        return -1;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(name);
        Py_DECREF(raw);
        return -1;
    }
    PyTuple_SET_ITEM(pair, 0, name);
    PyTuple_SET_ITEM(pair, 1, raw);
    int status = set_pair(self->list, pair);
    Py_DECREF(pair);
    if (status <= 0)
        return status;
fallback:
    result = PyObject_CallFunctionObjArgs(fstate.set_item, (PyObject *)self, key, value, NULL);
python:
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static PyMappingMethods fields_mapping = {
    .mp_ass_subscript = (objobjargproc)fields_ass_subscript,
};

static PyMemberDef fields_members[] = {
    {"_list", T_OBJECT_EX, offsetof(HeaderFields, list), 0, "the raw (name, value) pairs"},
    {NULL},
};

static PyTypeObject HeaderFieldsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.HeaderFields",
    .tp_doc = "MutableHeaders' base: the raw pair list, and item assignment done in C.",
    .tp_basicsize = sizeof(HeaderFields),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)fields_traverse,
    .tp_clear = (inquiry)fields_clear,
    .tp_dealloc = (destructor)fields_dealloc,
    .tp_as_mapping = &fields_mapping,
    .tp_members = fields_members,
};

/* headers_of(response) -> MutableHeaders over response.raw_headers */
static PyObject *
headers_of(PyObject *Py_UNUSED(module), PyObject *response)
{
    if (fstate.view_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "catzilla.response_headers has not registered its functions");
        return NULL;
    }
    PyObject *raw = PyObject_GetAttr(response, fstate.str_raw_headers);
    if (raw == NULL)
        return NULL;
    HeaderFields *view = (HeaderFields *)fstate.view_type->tp_alloc(fstate.view_type, 0);
    if (view == NULL) {
        Py_DECREF(raw);
        return NULL;
    }
    view->list = raw;
    return (PyObject *)view;
}

/* register_fields(MutableHeaders, set_item, del_item): called once by
 * catzilla.response_headers. */
static PyObject *
register_fields(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0])
            || !PyType_IsSubtype((PyTypeObject *)args[0], &HeaderFieldsType)
            || !PyCallable_Check(args[1]) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "register_fields(a HeaderFields subclass, set_item, del_item)");
        return NULL;
    }
    Py_XSETREF(fstate.view_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(fstate.set_item, Py_NewRef(args[1]));
    Py_XSETREF(fstate.del_item, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

static PyMethodDef fields_functions[] = {
    {"headers_of", (PyCFunction)headers_of, METH_O,
     "headers_of(response) -> MutableHeaders: the view of response.raw_headers."},
    {"register_fields", (PyCFunction)(void (*)(void))register_fields, METH_FASTCALL,
     "register_fields(MutableHeaders, set_item, del_item)"},
    {NULL},
};

int
catzilla_fields_init(PyObject *module)
{
    if (catzilla_intern(&fstate.str_raw_headers, "raw_headers") < 0)
        return -1;
    if (PyType_Ready(&HeaderFieldsType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "HeaderFields", (PyObject *)&HeaderFieldsType) < 0)
        return -1;
    return PyModule_AddFunctions(module, fields_functions);
}
