/* One request in flight: the record the connection hands the executor and gets back.
 *
 * Made once per request on the hot path, so it is a C struct with fixed fields: making one
 * costs what a tuple does, and its fields read and write as slots do. What the fields mean,
 * and who sets them when, is told in catzilla/worker/exchange.py.
 */
#include "native.h"

#include <structmember.h>

/* Every field is an object reached as a T_OBJECT_EX member: those are the members the
 * interpreter specialises attribute access for (as it does __slots__), so Python code reads
 * and writes them without a type lookup. */
typedef struct {
    PyObject_HEAD
    PyObject *connection;
    PyObject *request;
    PyObject *route;
    PyObject *common;
    PyObject *head_only;
    PyObject *keep_alive;
    PyObject *row;
    PyObject *started;
    PyObject *owed;
    PyObject *task;
    PyObject *response;
    PyObject *data;
} Exchange;

#define NFIELDS 8 /* connection, request, route, common, head_only, keep_alive, row, started */
_Static_assert(offsetof(Exchange, data) - offsetof(Exchange, connection) == EX_DATA * sizeof(PyObject *),
               "native.h's EX_ indices are the order of Exchange's fields");
#define NALL ((int)((sizeof(Exchange) - offsetof(Exchange, connection)) / sizeof(PyObject *)))

static PyObject *
exchange_make(PyTypeObject *type, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != NFIELDS) {
        PyErr_Format(PyExc_TypeError,
                     "Exchange(connection, request, route, common, head_only, keep_alive, row, "
                     "started) takes %d arguments, got %zd", NFIELDS, nargs);
        return NULL;
    }
    Exchange *self = (Exchange *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    PyObject **field = &self->connection;
    for (Py_ssize_t i = 0; i < NFIELDS; i++)
        field[i] = Py_NewRef(args[i]);
    self->owed = Py_NewRef(Py_False);
    self->task = Py_NewRef(Py_None);
    self->response = Py_NewRef(Py_None);
    self->data = Py_NewRef(Py_None);
    return (PyObject *)self;
}

static PyObject *
exchange_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Exchange() takes no keyword arguments");
        return NULL;
    }
    return exchange_make(type, &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args));
}

static PyObject *
exchange_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_SetString(PyExc_TypeError, "Exchange() takes no keyword arguments");
        return NULL;
    }
    return exchange_make((PyTypeObject *)type, args, PyVectorcall_NARGS(nargsf));
}

static int
exchange_traverse(Exchange *self, visitproc visit, void *arg)
{
    PyObject **field = &self->connection;
    for (int i = 0; i < NALL; i++)
        Py_VISIT(field[i]);
    return 0;
}

static int
exchange_clear(Exchange *self)
{
    PyObject **field = &self->connection;
    for (int i = 0; i < NALL; i++)
        Py_CLEAR(field[i]);
    return 0;
}

static void
exchange_dealloc(Exchange *self)
{
    PyObject_GC_UnTrack(self);
    exchange_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define FIELD(name, kind, doc) {#name, kind, offsetof(Exchange, name), 0, doc}

static PyMemberDef exchange_members[] = {
    FIELD(connection, T_OBJECT_EX, "The connection (HttpProtocol) the request came on."),
    FIELD(request, T_OBJECT_EX, "The Request."),
    FIELD(route, T_OBJECT_EX, "Its Route, or None when no route answers it."),
    FIELD(common, T_OBJECT_EX, "Header lines every response on the connection carries now."),
    FIELD(head_only, T_OBJECT_EX, "A HEAD request: the body is left out."),
    FIELD(keep_alive, T_OBJECT_EX, "The connection stays open after the response."),
    FIELD(row, T_OBJECT_EX, "Its row in the stats block."),
    FIELD(started, T_OBJECT_EX, "perf_counter() when handling began."),
    FIELD(owed, T_OBJECT_EX, "The outcome is still owed (the handler runs in the pool or a Task)."),
    FIELD(task, T_OBJECT_EX, "The Task that runs it, or None."),
    FIELD(response, T_OBJECT_EX, "What a pool job produced: the response (or an awaitable)."),
    FIELD(data, T_OBJECT_EX, "The response's bytes, as a pool job encoded them, or None."),
    {NULL},
};

static PyTypeObject ExchangeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.Exchange",
    .tp_doc = "Exchange(connection, request, route, common, head_only, keep_alive, row, started)",
    .tp_basicsize = sizeof(Exchange),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = exchange_new,
    .tp_vectorcall = exchange_vectorcall,
    .tp_dealloc = (destructor)exchange_dealloc,
    .tp_traverse = (traverseproc)exchange_traverse,
    .tp_clear = (inquiry)exchange_clear,
    .tp_members = exchange_members,
};

/* An Exchange made from C (ext/connection.c), without a call through the type. */
PyObject *
catzilla_exchange_new(PyObject *const fields[8])
{
    return exchange_make(&ExchangeType, fields, NFIELDS);
}

PyObject **
catzilla_exchange_slots(PyObject *obj)
{
    return Py_IS_TYPE(obj, &ExchangeType) ? &((Exchange *)obj)->connection : NULL;
}

/* ---- driving a coroutine that cannot suspend ------------------------------------------- */

static PyObject *Suspended; /* catzilla._native.Suspended */

/* drive(coroutine) -> what it returned. The value comes back without a StopIteration (an
 * exception per request, with its traceback, costs more than the rest of the call); if the
 * coroutine suspends after all, Suspended(the value it yielded) is raised and the coroutine
 * is left where it stopped, for the caller to go on with or to close. */
static PyObject *
drive(PyObject *Py_UNUSED(module), PyObject *coroutine)
{
    PyObject *result = NULL;
    PySendResult status = PyIter_Send(coroutine, Py_None, &result);
    if (status == PYGEN_RETURN)
        return result;
    if (status == PYGEN_ERROR)
        return NULL;
    /* An instance made here, so that a yielded tuple is not taken for the arguments. */
    PyObject *exc = PyObject_CallOneArg(Suspended, result);
    Py_DECREF(result);
    if (exc != NULL) {
        PyErr_SetObject(Suspended, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyMethodDef exchange_functions[] = {
    {"drive", (PyCFunction)drive, METH_O,
     "drive(coroutine) -> its return value; raises Suspended(yielded) if it suspends."},
    {NULL},
};

int
catzilla_exchange_init(PyObject *module)
{
    if (PyType_Ready(&ExchangeType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Exchange", (PyObject *)&ExchangeType) < 0)
        return -1;
    Suspended = PyErr_NewExceptionWithDoc(
        "catzilla._native.Suspended",
        "A coroutine given to drive() suspended; args[0] is what it yielded.", NULL, NULL);
    if (Suspended == NULL || PyModule_AddObjectRef(module, "Suspended", Suspended) < 0)
        return -1;
    return PyModule_AddFunctions(module, exchange_functions);
}
