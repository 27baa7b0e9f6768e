/* The requests of one event-loop turn that run straight, answered together, a step at a time.
 *
 * A worker answering each request as soon as it is parsed runs, per request, the parser, the
 * router, the handler, the JSON encoder, the stats and the write system call, one after the
 * other: more code than the CPU's level-1 instruction cache holds (64 KiB here), so each
 * step finds its code evicted by the others, and the kernel's TCP code by all of them. Under
 * load, most of that time is cache misses, not instructions (loadtests/instr_profile.sh -c).
 * A `def` route's hand-off has the same trouble another way: each job put on the pool's
 * queue wakes a thread, which preempts the loop in the middle of its reads.
 *
 * So a connection defers a request whose route runs straight (Executor.straight: a handler
 * or chain that cannot suspend, or a `def` handler's pool hand-off) to the executor's
 * InlineBatch, and the batch runs when the loop next calls it, once per turn
 * (loop.call_soon, after every read of the turn was parsed): every deferred request's
 * handler run or job handed to the pool first, then every inline response written. Each
 * step then runs for many requests in a row with its code in cache, and the pool's threads
 * wake once the loop has read everything: on /json about 1.7 times the requests per second
 * of one at a time, on /sync 1.2 times (issue 13's note). What is deferred while the batch
 * runs waits for the next turn.
 *
 *     batch.add(exchange, how)   defer (C: catzilla_batch_add, from ext/connection.c)
 *     batch()                    run: the handlers and hand-offs, then the writes
 *
 * An error no handler raised (the handler's own are answered by failure() as a 500) would
 * have gone out of data_received at once; here it goes to broken(exchange, exc), which logs
 * it and closes that connection, and the rest of the batch is answered.
 */
#include "native.h"

#include <stddef.h>

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *call_soon; /* the loop's call_soon */
    PyObject *broken;    /* broken(exchange, exc): an error out of the batch's own code */
    PyObject *waiting;   /* exchange, how, exchange, how, ...: no tuple per request */
    Py_ssize_t runs;     /* times the batch ran (a test reads it) */
} InlineBatch;

static PyTypeObject InlineBatchType;

int
catzilla_batch_add(PyObject *batch, PyObject *exchange, PyObject *how)
{
    if (!Py_IS_TYPE(batch, &InlineBatchType)) {
        PyErr_SetString(PyExc_TypeError, "a connection's batch is an InlineBatch or None");
        return -1;
    }
    InlineBatch *self = (InlineBatch *)batch;
    Py_ssize_t size = PyList_GET_SIZE(self->waiting);
    if (PyList_Append(self->waiting, exchange) < 0)
        return -1;
    if (PyList_Append(self->waiting, how) < 0)
        goto undo;
    if (size != 0)
        return 0; /* the run is already scheduled */
    PyObject *handle = PyObject_CallOneArg(self->call_soon, batch);
    if (handle == NULL)
        goto undo; /* (a closed loop): the caller's error, and nothing left waiting */
    Py_DECREF(handle);
    return 0;
undo:
    {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (PyList_SetSlice(self->waiting, size, PyList_GET_SIZE(self->waiting), NULL) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, traceback);
    }
    return -1;
}

/* The error being raised, given to broken(exchange, exc); the batch goes on. Should
 * broken() itself fail, the connection is still closed: never left waiting. */
static void
report(InlineBatch *self, PyObject *exchange)
{
    PyObject *exc = catzilla_take_exception();
    PyObject *args[2] = {exchange, exc};
    PyObject *done = PyObject_Vectorcall(self->broken, args, 2, NULL);
    if (done == NULL) {
        PyErr_WriteUnraisable(self->broken); /* nowhere else to say it */
        PyObject *connection = catzilla_exchange_slots(exchange)[EX_CONNECTION];
        PyObject *transport = connection == NULL ? NULL : PyObject_GetAttrString(connection, "transport");
        PyObject *aborted = transport == NULL || transport == Py_None ? NULL
            : PyObject_CallMethod(transport, "abort", NULL);
        if (aborted == NULL)
            PyErr_Clear();
        Py_XDECREF(aborted);
        Py_XDECREF(transport);
    }
    Py_XDECREF(done);
    Py_DECREF(exc);
}

/* A run that could not start (no memory for its lists): tried again next turn, so that
 * nothing deferred is left waiting with no run scheduled. */
static PyObject *
retry(InlineBatch *self)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *handle = PyObject_CallOneArg(self->call_soon, (PyObject *)self);
    if (handle == NULL)
        PyErr_Clear(); /* the loop is closing: nothing runs any more */
    Py_XDECREF(handle);
    PyErr_Restore(type, value, traceback);
    return NULL;
}

static PyObject *
InlineBatch_vectorcall(InlineBatch *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "InlineBatch() takes no arguments");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(self->waiting) / 2;
    PyObject *fresh = PyList_New(0);
    PyObject *outcomes = fresh == NULL ? NULL : PyList_New(n);
    if (outcomes == NULL) {
        Py_XDECREF(fresh);
        return retry(self);
    }
    PyObject *waiting = self->waiting; /* ours now: what is deferred while it runs waits */
    self->waiting = fresh;
    self->runs++;
    for (Py_ssize_t i = 0; i < n; i++) { /* every handler or hand-off... */
        PyObject *exchange = PyList_GET_ITEM(waiting, 2 * i), *how = PyList_GET_ITEM(waiting, 2 * i + 1);
        PyObject *outcome = NULL; /* a job's response is written when the pool is done */
        if (PyTuple_CheckExact(how)) {
            PyObject *handed = catzilla_inline_hand_off(exchange, how);
            if (handed == NULL)
                report(self, exchange);
            Py_XDECREF(handed);
        }
        else {
            outcome = catzilla_inline_outcome(exchange, how);
            if (outcome == NULL)
                report(self, exchange);
        }
        PyList_SET_ITEM(outcomes, i, outcome); /* NULL: nothing to write */
    }
    for (Py_ssize_t i = 0; i < n; i++) { /* ...then every write */
        PyObject *exchange = PyList_GET_ITEM(waiting, 2 * i), *outcome = PyList_GET_ITEM(outcomes, i);
        if (outcome == NULL)
            continue;
        PyObject *written = catzilla_inline_complete(exchange, outcome);
        if (written == NULL)
            report(self, exchange);
        Py_XDECREF(written);
    }
    Py_DECREF(outcomes);
    Py_DECREF(waiting);
    Py_RETURN_NONE;
}

static PyObject *
InlineBatch_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *call_soon, *broken;
    static char *kwlist[] = {"call_soon", "broken", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:InlineBatch", kwlist, &call_soon, &broken))
        return NULL;
    if (!PyCallable_Check(call_soon) || !PyCallable_Check(broken)) {
        PyErr_SetString(PyExc_TypeError, "InlineBatch(call_soon, broken): two callables");
        return NULL;
    }
    InlineBatch *self = (InlineBatch *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)InlineBatch_vectorcall;
    self->call_soon = Py_NewRef(call_soon);
    self->broken = Py_NewRef(broken);
    self->waiting = PyList_New(0);
    if (self->waiting == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
InlineBatch_traverse(InlineBatch *self, visitproc visit, void *arg)
{
    Py_VISIT(self->call_soon);
    Py_VISIT(self->broken);
    Py_VISIT(self->waiting);
    return 0;
}

static int
InlineBatch_clear(InlineBatch *self)
{
    Py_CLEAR(self->call_soon);
    Py_CLEAR(self->broken);
    Py_CLEAR(self->waiting);
    return 0;
}

static void
InlineBatch_dealloc(InlineBatch *self)
{
    PyObject_GC_UnTrack(self);
    InlineBatch_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
InlineBatch_len(InlineBatch *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->waiting == NULL ? 0 : PyList_GET_SIZE(self->waiting) / 2);
}

static PyObject *
InlineBatch_get_runs(InlineBatch *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->runs);
}

static PyMethodDef InlineBatch_methods[] = {
    {"waiting", (PyCFunction)InlineBatch_len, METH_NOARGS, "Requests deferred and not yet run."},
    {NULL},
};

static PyGetSetDef InlineBatch_getset[] = {
    {"runs", (getter)InlineBatch_get_runs, NULL, "Times the batch ran.", NULL},
    {NULL},
};

static PyTypeObject InlineBatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.InlineBatch",
    .tp_basicsize = sizeof(InlineBatch),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "InlineBatch(call_soon, broken): the requests of one loop turn that run straight, "
              "answered together: every handler or pool hand-off, then every write.",
    .tp_new = InlineBatch_new,
    .tp_traverse = (traverseproc)InlineBatch_traverse,
    .tp_clear = (inquiry)InlineBatch_clear,
    .tp_dealloc = (destructor)InlineBatch_dealloc,
    .tp_vectorcall_offset = offsetof(InlineBatch, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_methods = InlineBatch_methods,
    .tp_getset = InlineBatch_getset,
};

int
catzilla_batch_init(PyObject *module)
{
    if (PyType_Ready(&InlineBatchType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "InlineBatch", (PyObject *)&InlineBatchType);
}
