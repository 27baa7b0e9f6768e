/* The fields of a Request, as a C struct (catzilla/request.py subclasses it).
 *
 * A request is made once per HTTP request on the hot path. As a Python class with
 * __slots__, making one ran a Python __init__ storing twenty attributes; as a C struct the
 * server fills it in one C call (HeaderCollector.take_request, ext/headers.c) and Python
 * code still reads and writes its fields as it reads `__slots__`: every field is a
 * T_OBJECT_EX member, which the interpreter specialises attribute access for.
 *
 * `Request(...)` built by hand (tests, adapters, the CPU lane) still runs Request.__init__,
 * which sets every field; a bare RequestFields.__new__ already holds the defaults below,
 * so no field is ever unset.
 */
#include "native.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *method;
    PyObject *path;
    PyObject *query_string;
    PyObject *path_params;
    PyObject *_body;
    PyObject *client;
    PyObject *http_version;
    PyObject *_header_items;
    PyObject *_header_map;
    PyObject *_headers;
    PyObject *_query_params;
    PyObject *_cookies;
    PyObject *_form;
    PyObject *_state;
    PyObject *background;
    PyObject *responded;
    PyObject *_trailers;
    PyObject *_json;
    PyObject *_stream;
    PyObject *scheme;
} RequestFields;

#define NFIELDS ((int)((sizeof(RequestFields) - offsetof(RequestFields, method)) / sizeof(PyObject *)))

typedef struct {
    PyObject *unread;      /* _native.UNREAD: request.json() has not decoded the body yet */
    PyObject *http;        /* "http" */
    PyObject *version_11;  /* "1.1" */
    PyObject *empty_str;
    PyObject *empty_bytes;
} RequestState;

static RequestState rstate;

PyTypeObject catzilla_RequestFieldsType;

/* The fields nothing is known of when a request is made, at their defaults. */
static int
fill_rest(RequestFields *self)
{
    PyObject *params = PyDict_New();
    if (params == NULL)
        return -1;
    self->path_params = params;
    self->_headers = Py_NewRef(Py_None);
    self->_query_params = Py_NewRef(Py_None);
    self->_cookies = Py_NewRef(Py_None);
    self->_form = Py_NewRef(Py_None);
    self->_state = Py_NewRef(Py_None);
    self->background = Py_NewRef(Py_None);
    self->responded = Py_NewRef(Py_False);
    self->_trailers = Py_NewRef(Py_None);
    self->_json = Py_NewRef(rstate.unread);
    self->_stream = Py_NewRef(Py_None);
    self->scheme = Py_NewRef(rstate.http);
    return 0;
}

static PyObject *
request_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return catzilla_make_request(type, rstate.empty_str, rstate.empty_str, rstate.empty_str, Py_None,
                                 Py_None, rstate.empty_bytes, Py_None, rstate.version_11);
}

/* The class the server makes its requests of (catzilla.request.Request), set once. */
static PyTypeObject *request_class;

PyTypeObject *
catzilla_request_class(void)
{
    if (request_class == NULL)
        PyErr_SetString(PyExc_RuntimeError, "catzilla.request has not set the request class");
    return request_class;
}

static PyObject *
set_request_class(PyObject *Py_UNUSED(module), PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &catzilla_RequestFieldsType)) {
        PyErr_SetString(PyExc_TypeError, "set_request_class() takes a subclass of RequestFields");
        return NULL;
    }
    Py_XSETREF(request_class, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_NONE;
}

/* A request of `type` (Request, or a subclass) as the server received it. Every argument
 * is borrowed; `header_items` and `header_map` may be None (no header line came). */
PyObject *
catzilla_make_request(PyTypeObject *type, PyObject *method, PyObject *path, PyObject *query,
                      PyObject *header_items, PyObject *header_map, PyObject *body,
                      PyObject *client, PyObject *version)
{
    RequestFields *self = (RequestFields *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->method = Py_NewRef(method);
    self->path = Py_NewRef(path);
    self->query_string = Py_NewRef(query);
    self->_body = Py_NewRef(body);
    self->client = Py_NewRef(client);
    self->http_version = Py_NewRef(version);
    self->_header_items = Py_NewRef(header_items);
    self->_header_map = Py_NewRef(header_map);
    if (fill_rest(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
request_traverse(RequestFields *self, visitproc visit, void *arg)
{
    PyObject **field = &self->method;
    for (int i = 0; i < NFIELDS; i++)
        Py_VISIT(field[i]);
    return 0;
}

static int
request_clear(RequestFields *self)
{
    PyObject **field = &self->method;
    for (int i = 0; i < NFIELDS; i++)
        Py_CLEAR(field[i]);
    return 0;
}

static void
request_dealloc(RequestFields *self)
{
    PyObject_GC_UnTrack(self);
    request_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define FIELD(name, doc) {#name, T_OBJECT_EX, offsetof(RequestFields, name), 0, doc}

static PyMemberDef request_members[] = {
    FIELD(method, "The method, upper case as sent (GET, POST, ...)."),
    FIELD(path, "The path, percent-decoded (without the root path)."),
    FIELD(query_string, "The query, as sent (latin-1 text, not decoded)."),
    FIELD(path_params, "The path parameters the route's template matched."),
    FIELD(_body, "The body's bytes as received (see Request.body)."),
    FIELD(client, "The client's Address, or None."),
    FIELD(http_version, "\"1.1\" or \"1.0\"."),
    FIELD(_header_items, "The header fields in order (lower-cased names), or None."),
    FIELD(_header_map, "The header fields by name, repeated ones combined, or None."),
    FIELD(_headers, "The Headers view, once made."),
    FIELD(_query_params, "The QueryParams, once made."),
    FIELD(_cookies, "The cookies, once parsed."),
    FIELD(_form, "The form, once parsed."),
    FIELD(_state, "The request's State, once made."),
    FIELD(background, "Tasks scheduled to run after the response, or None."),
    FIELD(responded, "The response has been sent."),
    FIELD(_trailers, "Fields after a chunked body, or None."),
    FIELD(_json, "The decoded JSON body, or UNREAD."),
    FIELD(_stream, "The BodyStream of a streaming route, or None."),
    FIELD(scheme, "http or https (ws or wss on a WebSocket)."),
    {NULL},
};

PyTypeObject catzilla_RequestFieldsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.RequestFields",
    .tp_doc = "The fields of a Request (catzilla.request.Request adds its behaviour).",
    .tp_basicsize = sizeof(RequestFields),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = request_new,
    .tp_dealloc = (destructor)request_dealloc,
    .tp_traverse = (traverseproc)request_traverse,
    .tp_clear = (inquiry)request_clear,
    .tp_members = request_members,
};

static PyMethodDef request_functions[] = {
    {"set_request_class", (PyCFunction)set_request_class, METH_O,
     "set_request_class(cls): the class HeaderCollector.take_request() makes requests of."},
    {NULL},
};

/* The sentinel of an undecoded JSON body: a plain object nobody else can hold. */
static PyTypeObject UnreadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.Unread",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

int
catzilla_request_init(PyObject *module)
{
    if (PyType_Ready(&UnreadType) < 0 || PyType_Ready(&catzilla_RequestFieldsType) < 0)
        return -1;
    rstate.unread = PyType_GenericNew(&UnreadType, NULL, NULL);
    rstate.http = PyUnicode_InternFromString("http");
    rstate.version_11 = PyUnicode_InternFromString("1.1");
    rstate.empty_str = PyUnicode_New(0, 0);
    rstate.empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    if (rstate.unread == NULL || rstate.http == NULL || rstate.version_11 == NULL
        || rstate.empty_str == NULL || rstate.empty_bytes == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "UNREAD", rstate.unread) < 0)
        return -1;
    if (PyModule_AddFunctions(module, request_functions) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "RequestFields", (PyObject *)&catzilla_RequestFieldsType);
}
