/* The thread pool's way there and back (catzilla/worker/pool.py), and a def handler's job
 * (catzilla/worker/executor.py), without Python frames.
 *
 * Handoff(get, put, finished, wake, stop, start, waiting, report, traced) is the hand-off
 * between the loop and the pool threads, and the counts the pool is told apart by:
 *
 *   admit(done, fn, *args) / submit(...)  on the loop: the job `(done, fn, args)` put on the
 *                  queue (by waiting() when it will wait for a thread, and timed), a thread
 *                  started by start() when none is free for it; admit() refuses (False) at
 *                  `capacity`.
 *   work(deliver)  a pool thread's whole life: take a job `(done, fn, args)` with get(),
 *                  run fn(*args), append `(done, result, error)` to `finished`, and wake the
 *                  loop with wake(deliver) only if no wake-up is pending already. Returns
 *                  True when it takes `stop`, False when the loop has closed (wake raised
 *                  RuntimeError).
 *   deliver()      on the loop: clear the pending flag, then hand every finished job to its
 *                  `done(result, error)`, counting each in `delivered` before its call.
 *
 * Step for step what pool.PyHandoff, the reference, does (tests/test_pool_native.py runs the
 * pool's scenarios on both). The counts have one writer each (see ThreadPool), and the
 * wake-up flag, the one field both sides write, is an atomic byte between two fences: a
 * result appended just as the loop clears it is seen by one of them, GIL or not.
 *
 * SyncJob(current_request, json_type, encode, settle, failure, reference) is
 * executor._run_sync, the job of a def route, for its usual case: nothing bound but the
 * request, and a JSONResponse back (its bytes made by _native.encode). Anything else goes to
 * the Python functions it was given: `reference` (_run_sync itself) when there are keyword
 * arguments or the handler takes no request, `settle` for any other result, `failure` for
 * an exception, so the outcome is always the one _run_sync gives (tests/test_pool_native.py
 * compares them).
 *
 * SyncDone(reference) is Executor._sync_done, the `done` of that job, for its usual outcome
 * (no error, still owed, bytes made): exchange.connection.complete(exchange, response, data)
 * with no frame between; anything else to `reference`.
 */
#include "native.h"

#include <structmember.h>

static PyObject *str_append, *str_popleft, *str_owed, *str_connection, *str_complete, *str_request,
    *str_route, *str_binding, *str_pass_request, *str_endpoint, *str_common, *str_head_only,
    *str_response, *str_data;

/* ---- the hand-off ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *get;      /* the job queue's get() */
    PyObject *put;      /* the job queue's put() */
    PyObject *finished; /* the deque of finished jobs */
    PyObject *append;   /* finished.append */
    PyObject *popleft;  /* finished.popleft */
    PyObject *wake;     /* loop.call_soon_threadsafe */
    PyObject *stop;     /* the job that ends a thread */
    PyObject *report;   /* report(exc): an error out of a done() callback, logged */
    PyObject *traced;   /* traced(exc) -> exc with a traceback: for one raised by C alone */
    PyObject *start;    /* start(): one more thread */
    PyObject *waiting;  /* waiting(done, fn, args) -> the job of one that will wait (timed) */
    char pending;       /* a wake-up is scheduled and has not started delivering */
    char timed;         /* a job that waits for a thread is timed (--queue-timeout) */
    /* The counts, written on the loop's thread (ThreadPool's docstring says why no lock) */
    Py_ssize_t submitted, delivered;
    Py_ssize_t threads;  /* threads started and not ended (ThreadPool keeps it, under its lock) */
    Py_ssize_t limit;    /* threads that may run */
    Py_ssize_t capacity; /* jobs running or waiting beyond which admit() refuses */
} Handoff;

static PyObject *
Handoff_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *get, *put, *finished, *wake, *stop, *start, *waiting, *report, *traced;
    static char *kwlist[] = {"get", "put", "finished", "wake", "stop", "start", "waiting", "report",
                             "traced", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOO:Handoff", kwlist, &get, &put, &finished,
                                     &wake, &stop, &start, &waiting, &report, &traced))
        return NULL;
    Handoff *self = (Handoff *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->get = Py_NewRef(get);
    self->put = Py_NewRef(put);
    self->start = Py_NewRef(start);
    self->waiting = Py_NewRef(waiting);
    self->finished = Py_NewRef(finished);
    self->wake = Py_NewRef(wake);
    self->stop = Py_NewRef(stop);
    self->report = Py_NewRef(report);
    self->traced = Py_NewRef(traced);
    self->append = PyObject_GetAttr(finished, str_append);
    self->popleft = PyObject_GetAttr(finished, str_popleft);
    if (self->append == NULL || self->popleft == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* One finished job on the deque: (done, result, error). */
static int
finish_job(Handoff *self, PyObject *done, PyObject *result, PyObject *error)
{
    PyObject *entry = PyTuple_Pack(3, done, result, error);
    if (entry == NULL)
        return -1;
    PyObject *appended = PyObject_CallOneArg(self->append, entry);
    Py_DECREF(entry);
    if (appended == NULL)
        return -1;
    Py_DECREF(appended);
    return 0;
}

/* Jobs submitted and not finished: running, or waiting for a thread. -1 on an error. */
static Py_ssize_t
jobs_ahead(Handoff *self)
{
    Py_ssize_t finished = PyObject_Length(self->finished);
    return finished < 0 ? -1 : self->submitted - self->delivered - finished;
}

/* The job (done, fn, args) on the queue, and a thread started if none is free for it. */
static PyObject *
queue_job(Handoff *self, Py_ssize_t ahead, PyObject *const *args, Py_ssize_t nargs, int timed)
{
    PyObject *fn_args = PyTuple_New(nargs - 2), *job;
    if (fn_args == NULL)
        return NULL;
    for (Py_ssize_t i = 2; i < nargs; i++)
        PyTuple_SET_ITEM(fn_args, i - 2, Py_NewRef(args[i]));
    if (timed) { /* no thread is free for it: it may wait, on a clock */
        PyObject *const waiting[3] = {args[0], args[1], fn_args};
        job = PyObject_Vectorcall(self->waiting, waiting, 3, NULL);
    }
    else {
        job = PyTuple_Pack(3, args[0], args[1], fn_args);
    }
    Py_DECREF(fn_args);
    if (job == NULL)
        return NULL;
    self->submitted++;
    PyObject *put = PyObject_CallOneArg(self->put, job);
    Py_DECREF(job);
    if (put == NULL)
        return NULL;
    Py_DECREF(put);
    if (self->threads <= ahead && self->threads < self->limit) { /* none free for it */
        PyObject *started = PyObject_CallNoArgs(self->start);
        if (started == NULL)
            return NULL;
        Py_DECREF(started);
    }
    Py_RETURN_TRUE;
}

/* submit(done, fn, *args): fn(*args) in a pool thread, then done(result, error) on the loop */
static PyObject *
Handoff_submit(Handoff *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "submit(done, fn, *args)");
        return NULL;
    }
    Py_ssize_t ahead = jobs_ahead(self);
    if (ahead < 0)
        return NULL;
    PyObject *queued = queue_job(self, ahead, args, nargs, 0);
    if (queued == NULL)
        return NULL;
    Py_DECREF(queued);
    Py_RETURN_NONE;
}

/* admit(done, fn, *args) -> bool: submit, unless the pool is at capacity (then False) */
static PyObject *
Handoff_admit(Handoff *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "admit(done, fn, *args)");
        return NULL;
    }
    Py_ssize_t ahead = jobs_ahead(self); /* a thread each, or waiting */
    if (ahead < 0)
        return NULL;
    if (ahead >= self->capacity)
        Py_RETURN_FALSE;
    return queue_job(self, ahead, args, nargs, ahead >= self->limit && self->timed);
}

/* work(deliver) -> True (took the stop job) or False (the loop has closed) */
static PyObject *
Handoff_work(Handoff *self, PyObject *deliver)
{
    for (;;) {
        PyObject *job = PyObject_CallNoArgs(self->get);
        if (job == NULL)
            return NULL;
        if (job == self->stop) {
            Py_DECREF(job);
            Py_RETURN_TRUE;
        }
        if (!PyTuple_CheckExact(job) || PyTuple_GET_SIZE(job) != 3
                || !PyTuple_CheckExact(PyTuple_GET_ITEM(job, 2))) {
            Py_DECREF(job);
            PyErr_SetString(PyExc_TypeError, "a pool job is (done, fn, args: tuple)");
            return NULL;
        }
        PyObject *done = PyTuple_GET_ITEM(job, 0);
        PyObject *result = PyObject_Call(PyTuple_GET_ITEM(job, 1), PyTuple_GET_ITEM(job, 2), NULL);
        int failed;
        if (result == NULL) {
            PyObject *error = catzilla_take_exception(); /* any: handed to `done`, which decides */
            PyObject *tb = PyException_GetTraceback(error); /* (None for a non-exception) */
            if (tb == NULL && PyExceptionInstance_Check(error)) {
                /* raised by C code alone (no Python frame unwound): given the traceback
                 * the reference's `except` gives it */
                Py_SETREF(error, PyObject_CallOneArg(self->traced, error));
            }
            Py_XDECREF(tb);
            failed = error == NULL ? -1 : finish_job(self, done, Py_None, error);
            Py_XDECREF(error);
        }
        else {
            failed = finish_job(self, done, result, Py_None);
            Py_DECREF(result);
        }
        /* The job is no longer pending from the append; nothing of it stays referenced by
         * an idle thread (a large response would stay alive until the next job). */
        Py_DECREF(job);
        if (failed < 0)
            return NULL;
        /* Order matters: append first, then look at the flag (see deliver). The fences
         * and the exchange keep that order without the GIL too (free-threaded builds). */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!__atomic_exchange_n(&self->pending, 1, __ATOMIC_SEQ_CST)) {
            PyObject *woken = PyObject_CallOneArg(self->wake, deliver);
            if (woken == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_RuntimeError))
                    return NULL;
                PyErr_Clear(); /* the loop has closed: nobody is waiting any more */
                Py_RETURN_FALSE;
            }
            Py_DECREF(woken);
        }
    }
}

/* deliver(): every finished job to its done(result, error), on the loop */
static PyObject *
Handoff_deliver(Handoff *self, PyObject *Py_UNUSED(ignored))
{
    /* Clear the flag before draining: a result appended after this line either gets
     * drained below or schedules a new delivery; none can be stranded. */
    __atomic_store_n(&self->pending, 0, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    while (PyObject_Length(self->finished) > 0) {
        PyObject *entry = PyObject_CallNoArgs(self->popleft);
        if (entry == NULL)
            return NULL;
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 3) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_TypeError, "a finished job is (done, result, error)");
            return NULL;
        }
        self->delivered++; /* with the pop, before `done` may submit (see ThreadPool.pending) */
        PyObject *const args[2] = {PyTuple_GET_ITEM(entry, 1), PyTuple_GET_ITEM(entry, 2)};
        PyObject *called = PyObject_Vectorcall(PyTuple_GET_ITEM(entry, 0), args, 2, NULL);
        Py_DECREF(entry);
        if (called != NULL) {
            Py_DECREF(called);
            continue;
        }
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL; /* KeyboardInterrupt and the like go on up */
        PyObject *exc = catzilla_take_exception();
        PyObject *reported = PyObject_CallOneArg(self->report, exc);
        Py_DECREF(exc);
        if (reported == NULL)
            return NULL;
        Py_DECREF(reported);
    }
    if (PyErr_Occurred())
        return NULL; /* len() failed */
    Py_RETURN_NONE;
}

static int
Handoff_traverse(Handoff *self, visitproc visit, void *arg)
{
    Py_VISIT(self->get);
    Py_VISIT(self->put);
    Py_VISIT(self->start);
    Py_VISIT(self->waiting);
    Py_VISIT(self->finished);
    Py_VISIT(self->append);
    Py_VISIT(self->popleft);
    Py_VISIT(self->wake);
    Py_VISIT(self->stop);
    Py_VISIT(self->report);
    Py_VISIT(self->traced);
    return 0;
}

static int
Handoff_clear(Handoff *self)
{
    Py_CLEAR(self->get);
    Py_CLEAR(self->put);
    Py_CLEAR(self->start);
    Py_CLEAR(self->waiting);
    Py_CLEAR(self->finished);
    Py_CLEAR(self->append);
    Py_CLEAR(self->popleft);
    Py_CLEAR(self->wake);
    Py_CLEAR(self->stop);
    Py_CLEAR(self->report);
    Py_CLEAR(self->traced);
    return 0;
}

static void
Handoff_dealloc(Handoff *self)
{
    PyObject_GC_UnTrack(self);
    Handoff_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Handoff_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))Handoff_submit, METH_FASTCALL,
     "submit(done, fn, *args): fn(*args) in a pool thread, then done(result, error) on the loop."},
    {"admit", (PyCFunction)(void (*)(void))Handoff_admit, METH_FASTCALL,
     "admit(done, fn, *args) -> bool: submit, unless the pool is at capacity: then False."},
    {"work", (PyCFunction)Handoff_work, METH_O,
     "work(deliver) -> True (took the stop job) or False (the loop has closed): a pool "
     "thread's loop."},
    {"deliver", (PyCFunction)Handoff_deliver, METH_NOARGS,
     "deliver(): every finished job handed to its done(result, error), on the loop."},
    {NULL},
};

static PyMemberDef Handoff_members[] = {
    {"pending", T_BOOL, offsetof(Handoff, pending), 0,
     "A wake-up of the loop is scheduled and has not started delivering."},
    {"timed", T_BOOL, offsetof(Handoff, timed), 0,
     "A job that has to wait for a thread is timed (waiting() makes its job)."},
    {"submitted", T_PYSSIZET, offsetof(Handoff, submitted), 0, "Jobs submitted so far."},
    {"delivered", T_PYSSIZET, offsetof(Handoff, delivered), 0,
     "Finished jobs handed to their done() so far."},
    {"threads", T_PYSSIZET, offsetof(Handoff, threads), 0, "Threads started and not ended."},
    {"limit", T_PYSSIZET, offsetof(Handoff, limit), 0, "Threads that may run."},
    {"capacity", T_PYSSIZET, offsetof(Handoff, capacity), 0,
     "Jobs running or waiting beyond which admit() refuses."},
    {NULL},
};

static PyTypeObject HandoffType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.Handoff",
    .tp_doc = "Handoff(get, put, finished, wake, stop, start, waiting, report, traced): the thread pool's way there and back.",
    .tp_basicsize = sizeof(Handoff),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Handoff_new,
    .tp_dealloc = (destructor)Handoff_dealloc,
    .tp_traverse = (traverseproc)Handoff_traverse,
    .tp_clear = (inquiry)Handoff_clear,
    .tp_methods = Handoff_methods,
    .tp_members = Handoff_members,
};

/* ---- a def route's job ----------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *current_request; /* the ContextVar the request is set in */
    PyObject *json_type;       /* JSONResponse: encoded here */
    PyObject *encode;          /* _native.encode(response, common, head_only) */
    PyObject *settle;          /* settle(exchange, result) -> exchange: any other result */
    PyObject *failure;         /* failure(exchange, exc) -> (response, data) */
    PyObject *reference;       /* _run_sync(exchange, kwargs): anything unusual */
} SyncJob;

/* exchange.<name>, read in place when it is an Exchange (ext/exchange.c), else (or a field
 * deleted) as an attribute: a new reference. */
static PyObject *
exchange_get(PyObject *exchange, int field, PyObject *name)
{
    PyObject **at = catzilla_exchange_slots(exchange);
    if (at != NULL && at[field] != NULL)
        return Py_NewRef(at[field]);
    return PyObject_GetAttr(exchange, name);
}

/* exchange.<name> = value */
static int
exchange_set(PyObject *exchange, int field, PyObject *name, PyObject *value)
{
    PyObject **at = catzilla_exchange_slots(exchange);
    if (at == NULL)
        return PyObject_SetAttr(exchange, name, value);
    Py_XSETREF(at[field], Py_NewRef(value));
    return 0;
}

/* exchange.response, exchange.data = the pair */
static int
set_outcome(PyObject *exchange, PyObject *response, PyObject *data)
{
    if (exchange_set(exchange, EX_RESPONSE, str_response, response) < 0)
        return -1;
    return exchange_set(exchange, EX_DATA, str_data, data);
}

/* An exception out of the handler or its encoding: answered by failure() if it is one a
 * handler may raise (Exception, SystemExit); 0 then, -1 (still raised) otherwise. */
static int
fail(SyncJob *self, PyObject *exchange)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception) && !PyErr_ExceptionMatches(PyExc_SystemExit))
        return -1;
    PyObject *exc = catzilla_take_exception();
    PyObject *const args[2] = {exchange, exc};
    PyObject *pair = PyObject_Vectorcall(self->failure, args, 2, NULL);
    Py_DECREF(exc);
    if (pair == NULL)
        return -1;
    int status;
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "failure() returns (response, data)");
        status = -1;
    }
    else {
        status = set_outcome(exchange, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1));
    }
    Py_DECREF(pair);
    return status;
}

/* Is the handler called as endpoint(request)? -1 on an error. */
static int
passes_request(PyObject *route)
{
    PyObject *binding = PyObject_GetAttr(route, str_binding);
    if (binding == NULL)
        return -1;
    PyObject *pass = PyObject_GetAttr(binding, str_pass_request);
    Py_DECREF(binding);
    if (pass == NULL)
        return -1;
    int truth = PyObject_IsTrue(pass);
    Py_DECREF(pass);
    return truth;
}

/* The JSONResponse's bytes into the exchange, or failure()'s answer. */
static int
encode_json(SyncJob *self, PyObject *exchange, PyObject *response)
{
    PyObject *common = exchange_get(exchange, EX_COMMON, str_common);
    if (common == NULL)
        return -1;
    PyObject *head_only = exchange_get(exchange, EX_HEAD_ONLY, str_head_only);
    if (head_only == NULL) {
        Py_DECREF(common);
        return -1;
    }
    PyObject *const args[3] = {response, common, head_only};
    PyObject *data = PyObject_Vectorcall(self->encode, args, 3, NULL);
    Py_DECREF(common);
    Py_DECREF(head_only);
    if (data == NULL)
        return fail(self, exchange);
    int status = set_outcome(exchange, response, data);
    Py_DECREF(data);
    return status;
}

/* job(exchange, kwargs) -> exchange, its outcome filled in (see _run_sync) */
static PyObject *
SyncJob_vectorcall(SyncJob *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "SyncJob(exchange, kwargs)");
        return NULL;
    }
    PyObject *exchange = args[0];
    PyObject *route = NULL, *request = NULL, *endpoint = NULL, *result = NULL, *out = NULL;
    if (args[1] != Py_None)
        return PyObject_Vectorcall(self->reference, args, 2, NULL);
    PyObject *owed = exchange_get(exchange, EX_OWED, str_owed);
    if (owed == NULL)
        return NULL;
    int is_owed = PyObject_IsTrue(owed);
    Py_DECREF(owed);
    if (is_owed <= 0) /* timed out while it waited: nobody wants it run */
        return is_owed < 0 ? NULL : Py_NewRef(exchange);
    route = exchange_get(exchange, EX_ROUTE, str_route);
    if (route == NULL)
        goto cleanup;
    int pass = passes_request(route);
    if (pass < 0)
        goto cleanup;
    if (!pass) {
        out = PyObject_Vectorcall(self->reference, args, 2, NULL);
        goto cleanup;
    }
    request = exchange_get(exchange, EX_REQUEST, str_request);
    if (request == NULL)
        goto cleanup;
    PyObject *token = PyContextVar_Set(self->current_request, request);
    if (token == NULL)
        goto cleanup;
    Py_DECREF(token);
    endpoint = PyObject_GetAttr(route, str_endpoint);
    if (endpoint == NULL)
        goto cleanup;
    result = PyObject_CallOneArg(endpoint, request);
    if (result == NULL) {
        if (fail(self, exchange) == 0)
            out = Py_NewRef(exchange);
        goto cleanup;
    }
    if (Py_TYPE(result) == (PyTypeObject *)self->json_type) {
        if (encode_json(self, exchange, result) == 0)
            out = Py_NewRef(exchange);
        goto cleanup;
    }
    PyObject *const settle_args[2] = {exchange, result};
    out = PyObject_Vectorcall(self->settle, settle_args, 2, NULL);
cleanup:
    Py_XDECREF(route);
    Py_XDECREF(request);
    Py_XDECREF(endpoint);
    Py_XDECREF(result);
    return out;
}

static PyObject *
SyncJob_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *var, *json_type, *encode, *settle, *failure, *reference;
    static char *kwlist[] = {"current_request", "json_type", "encode", "settle", "failure", "reference",
                             NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OOOO:SyncJob", kwlist, &PyContextVar_Type, &var,
                                     &PyType_Type, &json_type, &encode, &settle, &failure, &reference))
        return NULL;
    SyncJob *self = (SyncJob *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)SyncJob_vectorcall;
    self->current_request = Py_NewRef(var);
    self->json_type = Py_NewRef(json_type);
    self->encode = Py_NewRef(encode);
    self->settle = Py_NewRef(settle);
    self->failure = Py_NewRef(failure);
    self->reference = Py_NewRef(reference);
    return (PyObject *)self;
}

static int
SyncJob_traverse(SyncJob *self, visitproc visit, void *arg)
{
    Py_VISIT(self->current_request);
    Py_VISIT(self->json_type);
    Py_VISIT(self->encode);
    Py_VISIT(self->settle);
    Py_VISIT(self->failure);
    Py_VISIT(self->reference);
    return 0;
}

static int
SyncJob_clear(SyncJob *self)
{
    Py_CLEAR(self->current_request);
    Py_CLEAR(self->json_type);
    Py_CLEAR(self->encode);
    Py_CLEAR(self->settle);
    Py_CLEAR(self->failure);
    Py_CLEAR(self->reference);
    return 0;
}

static void
SyncJob_dealloc(SyncJob *self)
{
    PyObject_GC_UnTrack(self);
    SyncJob_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject SyncJobType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.SyncJob",
    .tp_doc = "SyncJob(current_request, json_type, encode, settle, failure, reference): "
              "executor._run_sync for the usual def route, callable as job(exchange, kwargs).",
    .tp_basicsize = sizeof(SyncJob),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(SyncJob, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = SyncJob_new,
    .tp_dealloc = (destructor)SyncJob_dealloc,
    .tp_traverse = (traverseproc)SyncJob_traverse,
    .tp_clear = (inquiry)SyncJob_clear,
};

/* ---- a def route's outcome, back on the loop ------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *reference; /* Executor._sync_done: anything but the usual */
} SyncDone;

/* done(exchange, error): the usual outcome (no error, still owed, bytes made) written with
 * exchange.connection.complete(exchange, response, data); anything else to the reference. */
static PyObject *
SyncDone_vectorcall(SyncDone *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "SyncDone(exchange, error)");
        return NULL;
    }
    PyObject *exchange = args[0], *data = NULL, *response = NULL, *connection = NULL, *out = NULL;
    if (args[1] != Py_None)
        return PyObject_Vectorcall(self->reference, args, 2, NULL);
    PyObject *owed = exchange_get(exchange, EX_OWED, str_owed);
    if (owed == NULL)
        return NULL;
    Py_DECREF(owed);
    if (owed != Py_True) /* answered meanwhile (a 504), or not a bool: the reference decides */
        return PyObject_Vectorcall(self->reference, args, 2, NULL);
    data = exchange_get(exchange, EX_DATA, str_data);
    if (data == NULL)
        return NULL;
    if (data == Py_None) { /* a stream, or an awaitable to await on the loop */
        Py_DECREF(data);
        return PyObject_Vectorcall(self->reference, args, 2, NULL);
    }
    response = exchange_get(exchange, EX_RESPONSE, str_response);
    if (response == NULL)
        goto cleanup;
    if (exchange_set(exchange, EX_OWED, str_owed, Py_False) < 0)
        goto cleanup;
    connection = exchange_get(exchange, EX_CONNECTION, str_connection);
    if (connection == NULL)
        goto cleanup;
    PyObject *const call[4] = {connection, exchange, response, data};
    out = PyObject_VectorcallMethod(str_complete, call, 4, NULL);
cleanup:
    Py_XDECREF(data);
    Py_XDECREF(response);
    Py_XDECREF(connection);
    return out;
}

static PyObject *
SyncDone_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *reference;
    static char *kwlist[] = {"reference", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:SyncDone", kwlist, &reference))
        return NULL;
    SyncDone *self = (SyncDone *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)SyncDone_vectorcall;
    self->reference = Py_NewRef(reference);
    return (PyObject *)self;
}

static int
SyncDone_traverse(SyncDone *self, visitproc visit, void *arg)
{
    Py_VISIT(self->reference);
    return 0;
}

static int
SyncDone_clear(SyncDone *self)
{
    Py_CLEAR(self->reference);
    return 0;
}

static void
SyncDone_dealloc(SyncDone *self)
{
    PyObject_GC_UnTrack(self);
    SyncDone_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject SyncDoneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.SyncDone",
    .tp_doc = "SyncDone(reference): Executor._sync_done for the usual outcome, callable as "
              "done(exchange, error).",
    .tp_basicsize = sizeof(SyncDone),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(SyncDone, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = SyncDone_new,
    .tp_dealloc = (destructor)SyncDone_dealloc,
    .tp_traverse = (traverseproc)SyncDone_traverse,
    .tp_clear = (inquiry)SyncDone_clear,
};

int
catzilla_pool_init(PyObject *module)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&str_append, "append"}, {&str_popleft, "popleft"}, {&str_owed, "owed"},
        {&str_connection, "connection"}, {&str_complete, "complete"},
        {&str_request, "request"}, {&str_route, "route"}, {&str_binding, "binding"},
        {&str_pass_request, "pass_request"}, {&str_endpoint, "endpoint"}, {&str_common, "common"},
        {&str_head_only, "head_only"}, {&str_response, "response"}, {&str_data, "data"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (catzilla_intern(names[i].slot, names[i].text) < 0)
            return -1;
    }
    if (PyType_Ready(&HandoffType) < 0 || PyType_Ready(&SyncJobType) < 0
            || PyType_Ready(&SyncDoneType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "SyncDone", (PyObject *)&SyncDoneType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Handoff", (PyObject *)&HandoffType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "SyncJob", (PyObject *)&SyncJobType);
}
