/* The state of one HTTP/1.1 connection as a C struct, and the usual request's way through
 * it without a Python frame (catzilla/worker/protocol.py's HttpProtocol subclasses it).
 *
 * Connection holds the fields the per-request path reads and writes, each a T_OBJECT_EX
 * member: Python code reads and writes them as it does `__slots__` (the interpreter
 * specialises attribute access for such members), and the C code here reaches them in the
 * struct. Its on_message_complete, which httptools calls at the end of every request, is
 * HttpProtocol's, step for step, for the usual case:
 *
 *     _message_complete      nothing received its own way, no body, nothing running or
 *                            queued, no TLS or root path: else the Python method, whole
 *     take_request           the head handed over (None: an unusual head, the Python way)
 *     _handle                probes, then the route (a static path, else resolve); no route
 *                            (404, 405), a probe: the Python method, whole
 *     run_inline, hand_off   for a route of Executor.straight (a bare handler, one whose
 *                            parameters a PlainInvoke binds, a chain that cannot suspend,
 *                            a `def` handler's pool job), else executor.start(exchange);
 *                            with --inline-batch, those deferred to ext/batch.c
 *     complete               bytes to write (not a file's), a transport: else the Python
 *                            method (_complete), whole; the access line by AccessLog's own
 *                            call. Also the connection's `complete` method, which the
 *                            executor calls for every other route's outcome
 *
 * Everything unusual goes to those Python methods before anything has changed, so they stay
 * the reference (the protocol, inline and stats tests run both ways).
 */
#include "native.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *worker;
    PyObject *executor;
    PyObject *transport;
    PyObject *parser;
    PyObject *collector;
    PyObject *client;
    PyObject *clock;
    PyObject *rejection;
    PyObject *reception;
    PyObject *head_started;
    PyObject *last_activity;
    PyObject *bytes_in;
    PyObject *receiving;
    PyObject *body;
    PyObject *edge;
    PyObject *trusted;
    PyObject *busy;
    PyObject *keep_alive;
    PyObject *pipeline;
    PyObject *exchange;
    PyObject *reading_paused;
    PyObject *routes; /* "static": the router's table of paths without parameters */
    PyObject *resolve;
    PyObject *straight;
    PyObject *stats_slot;
    PyObject *batch; /* the executor's InlineBatch, None: each inline route answered at once */
} Connection;

#define NALL ((int)((sizeof(Connection) - offsetof(Connection, worker)) / sizeof(PyObject *)))

typedef struct {
    PyObject *idle, *head;   /* Reception.IDLE, Reception.HEAD */
    PyObject *feed_errors;   /* what data_received answers when feed_data raises it */
    PyObject *failure;       /* catzilla.worker.executor.failure */
    PyObject *inline_state;  /* catzilla.background_tasks.inline */
    PyObject *finish_inline; /* catzilla._native.finish_inline */
    PyObject *perf_counter;  /* time.perf_counter */
    PyObject *empty;         /* b"" */
    PyObject *one, *zero;
    PyObject *str_message_complete, *str_at_edge, *str_handle, *str_complete, *str_after_response, *str_status_code, *str_retire, *str_start, *str_feed_failed, *str_fed;
    PyObject *str_sends_file, *str_exchange, *str_max_queue;
} ConnectionState;

static ConnectionState cstate;

/* ---- slots of other classes ------------------------------------------------------------- */

/* An attribute read or written where the interpreter's own specialisation would: a
 * T_OBJECT_EX member (a `__slots__` entry, or a C struct's field) found once on the first
 * object's type, then reached at its offset while the type is that one and unchanged (its
 * version tag, as the interpreter checks it). Any other object goes through getattr. */
typedef struct {
    const char *text;
    PyObject *name;
    PyTypeObject *type; /* strong, once learnt */
    unsigned int version;
    Py_ssize_t offset;
    int writable;
} Slot;

static void
learn(PyObject *obj, Slot *slot)
{
    PyTypeObject *type = Py_TYPE(obj);
    PyObject *descr = _PyType_Lookup(type, slot->name); /* borrowed; gives type a version tag */
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
            || !(type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG))
        return;
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX)
        return;
    slot->writable = !(member->flags & READONLY);
    slot->type = (PyTypeObject *)Py_NewRef(type);
    slot->version = type->tp_version_tag;
    slot->offset = member->offset;
}

static inline PyObject **
slot_at(PyObject *obj, Slot *slot)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (type != slot->type) {
        if (slot->type != NULL)
            return NULL;
        learn(obj, slot);
        if (slot->type != type)
            return NULL;
    }
    if (type->tp_version_tag != slot->version || !(type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG))
        return NULL;
    return (PyObject **)((char *)obj + slot->offset);
}

/* getattr(obj, name), a new reference */
static PyObject *
slot_get(PyObject *obj, Slot *slot)
{
    PyObject **at = slot_at(obj, slot);
    if (at != NULL && *at != NULL)
        return Py_NewRef(*at);
    return PyObject_GetAttr(obj, slot->name);
}

/* setattr(obj, name, value) */
static int
slot_set(PyObject *obj, Slot *slot, PyObject *value)
{
    PyObject **at = slot_at(obj, slot);
    if (at == NULL || !slot->writable)
        return PyObject_SetAttr(obj, slot->name, value);
    Py_XSETREF(*at, Py_NewRef(value));
    return 0;
}

enum {
    W_ACCESS_LOG, W_ACCESS, W_HANDLED, W_MAX_REQUESTS, W_PROBES, W_CLOSE_CONNECTIONS, W_COMMON_CLOSE,
    W_COMMON_KEEP_ALIVE, W_COMMON_KEEP_ALIVE_10, R_PATH, R_METHOD, R_HTTP_VERSION, R_BACKGROUND,
    R_RESPONDED, R_HEADER_MAP, R_PATH_PARAMS, ROUTE_INDEX, ROUTE_ENDPOINT, INLINE_REQUEST,
    C_AWAITING_CONTINUE, NSLOTS
};

static Slot slots[NSLOTS] = {
    [W_ACCESS_LOG] = {"access_log"}, [W_ACCESS] = {"access"}, [W_HANDLED] = {"handled"}, [W_MAX_REQUESTS] = {"max_requests"},
    [W_PROBES] = {"probes"}, [W_CLOSE_CONNECTIONS] = {"close_connections"},
    [W_COMMON_CLOSE] = {"common_close"}, [W_COMMON_KEEP_ALIVE] = {"common_keep_alive"},
    [W_COMMON_KEEP_ALIVE_10] = {"common_keep_alive_10"}, [R_PATH] = {"path"}, [R_METHOD] = {"method"},
    [R_HTTP_VERSION] = {"http_version"}, [R_BACKGROUND] = {"background"}, [R_RESPONDED] = {"responded"},
    [R_HEADER_MAP] = {"_header_map"}, [R_PATH_PARAMS] = {"path_params"}, [ROUTE_INDEX] = {"index"},
    [ROUTE_ENDPOINT] = {"endpoint"}, [INLINE_REQUEST] = {"request"},
    [C_AWAITING_CONTINUE] = {"awaiting_continue"},
};

/* A method of another class called as the interpreter calls one: its descriptor (one that
 * takes the object as its first argument: a C method, a Cython function) found once on the
 * first object's type (one without an instance dict, which could shadow it), then called
 * directly while the type is that one and unchanged. Any other object goes through the
 * usual method call. */
typedef struct {
    const char *text;
    PyObject *name;
    PyTypeObject *type; /* strong, once learnt */
    unsigned int version;
    PyObject *descr;    /* strong, once learnt */
} Method;

/* args[0].name(*args[1:nargs]) */
static PyObject *
method_call(Method *method, PyObject **args, size_t nargs)
{
    PyTypeObject *type = Py_TYPE(args[0]);
    if (type != method->type && method->type == NULL && type->tp_dictoffset == 0) {
        PyObject *descr = _PyType_Lookup(type, method->name); /* borrowed; gives a version tag */
        if (descr != NULL && PyType_HasFeature(Py_TYPE(descr), Py_TPFLAGS_METHOD_DESCRIPTOR)
                && (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
            method->descr = Py_NewRef(descr);
            method->version = type->tp_version_tag;
            method->type = (PyTypeObject *)Py_NewRef(type);
        }
    }
    if (type == method->type && type->tp_version_tag == method->version
            && (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG))
        return PyObject_Vectorcall(method->descr, args, nargs, NULL);
    return PyObject_VectorcallMethod(method->name, args, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

enum { M_TAKE_REQUEST, M_FEED_DATA, M_BEGIN, M_END, M_WRITE, NMETHODS };

static Method methods[NMETHODS] = {
    [M_TAKE_REQUEST] = {"take_request"}, [M_FEED_DATA] = {"feed_data"}, [M_BEGIN] = {"begin"},
    [M_END] = {"end"}, [M_WRITE] = {"write"},
};

/* ---- the type ---------------------------------------------------------------------------- */

static PyObject *
connection_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Connection *self = (Connection *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    PyObject **field = &self->worker;
    for (int i = 0; i < NALL; i++)
        field[i] = Py_NewRef(Py_None); /* __init__ sets them all: none is ever unset */
    return (PyObject *)self;
}

static int
connection_traverse(Connection *self, visitproc visit, void *arg)
{
    PyObject **field = &self->worker;
    for (int i = 0; i < NALL; i++)
        Py_VISIT(field[i]);
    return 0;
}

static int
connection_clear(Connection *self)
{
    PyObject **field = &self->worker;
    for (int i = 0; i < NALL; i++)
        Py_CLEAR(field[i]);
    return 0;
}

static void
connection_dealloc(Connection *self)
{
    PyObject_GC_UnTrack(self);
    connection_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- the usual request ------------------------------------------------------------------- */

static PyObject *
call_method(PyObject *self, PyObject *name)
{
    return PyObject_CallMethodNoArgs(self, name);
}

/* Nothing on the connection asks for the longer way: no body received its own way or
 * arrived, nothing running or queued, no TLS or root path to apply, no `close` answered. */
static int
usual_state(Connection *self)
{
    if (self->receiving != Py_None || self->busy == Py_True || self->edge == Py_True
            || self->keep_alive != Py_True) /* answered with `close`: the Python way drops it */
        return 0;
    if (!PyList_CheckExact(self->body) || PyList_GET_SIZE(self->body) != 0)
        return 0;
    Py_ssize_t queued = PyObject_Size(self->pipeline);
    if (queued != 0) {
        if (queued < 0)
            PyErr_Clear(); /* not a deque: the Python way says what is wrong */
        return 0;
    }
    return PyDict_CheckExact(self->routes) && PyDict_CheckExact(self->straight);
}

/* The request being handled: an Exchange's fields, made an Exchange (and the connection's
 * `exchange`) only once Python code is to see it: executor.start, a failure, the Python
 * complete or _after_response. The usual inline request never is, and nothing reads a
 * connection's exchange while an inline handler runs (it cannot suspend). */
typedef struct {
    PyObject *fields[8]; /* borrowed: connection, request, route, common, head_only, keep_alive, row, started */
    PyObject *exchange;  /* NULL until made */
} Pending;

#define P_REQUEST(p) ((p)->fields[1])
#define P_ROW(p) ((p)->fields[6])
#define P_STARTED(p) ((p)->fields[7])

/* The Exchange, made now if it is not yet (borrowed). */
static PyObject *
exchange_of(Connection *self, Pending *pending)
{
    if (pending->exchange == NULL) {
        pending->exchange = catzilla_exchange_new(pending->fields);
        if (pending->exchange == NULL)
            return NULL;
        Py_SETREF(self->exchange, Py_NewRef(pending->exchange));
    }
    return pending->exchange;
}

/* self._after_response(), which reads the exchange */
static PyObject *
after_response(Connection *self, Pending *pending)
{
    if (exchange_of(self, pending) == NULL)
        return NULL;
    return call_method((PyObject *)self, cstate.str_after_response);
}

/* HttpProtocol.complete's usual case: bytes to write (not a file's: its status is known
 * later), a transport. */
static PyObject *
complete(Connection *self, Pending *pending, PyObject *response, PyObject *data)
{
    PyObject *access = NULL, *handled = NULL, *limit = NULL, *status = NULL, *background = NULL;
    PyObject *result = NULL, *now = NULL, *size = NULL;
    PyObject *worker = self->worker, *request = P_REQUEST(pending);

    access = slot_get(worker, &slots[W_ACCESS_LOG]);
    if (access == NULL)
        return NULL;
    int logs = PyObject_IsTrue(access);
    if (logs < 0)
        goto cleanup;
    int usual = PyBytes_Check(data) && self->transport != Py_None;
    if (usual && logs) {
        PyObject *sends_file = PyObject_GetAttr(response, cstate.str_sends_file);
        if (sends_file == NULL)
            goto cleanup;
        int sends = PyObject_IsTrue(sends_file);
        Py_DECREF(sends_file);
        if (sends < 0)
            goto cleanup;
        usual = !sends;
    }
    if (!usual) {
        PyObject *exchange = exchange_of(self, pending);
        if (exchange != NULL)
            result = PyObject_CallMethodObjArgs((PyObject *)self, cstate.str_complete, exchange, response,
                                                data, NULL);
        goto cleanup;
    }
    handled = slot_get(worker, &slots[W_HANDLED]);
    if (handled == NULL)
        goto cleanup;
    Py_SETREF(handled, PyNumber_Add(handled, cstate.one));
    if (handled == NULL || slot_set(worker, &slots[W_HANDLED], handled) < 0)
        goto cleanup;
    limit = slot_get(worker, &slots[W_MAX_REQUESTS]);
    if (limit == NULL)
        goto cleanup;
    int last = PyObject_RichCompareBool(handled, limit, Py_EQ); /* max_requests 0: never */
    if (last < 0)
        goto cleanup;
    if (last) {
        PyObject *done = call_method(worker, cstate.str_retire);
        if (done == NULL)
            goto cleanup;
        Py_DECREF(done);
    }
    if (self->stats_slot != Py_None || logs) {
        status = PyObject_GetAttr(response, cstate.str_status_code);
        size = PyLong_FromSsize_t(PyBytes_GET_SIZE(data));
        if (status == NULL || size == NULL)
            goto cleanup;
    }
    if (self->stats_slot != Py_None) {
        PyObject *args[6] = {self->stats_slot, P_ROW(pending), P_STARTED(pending), status, self->bytes_in, size};
        PyObject *counted = method_call(&methods[M_END], args, 6);
        if (counted == NULL)
            goto cleanup;
        Py_DECREF(counted);
        Py_SETREF(self->bytes_in, Py_NewRef(cstate.zero));
    }
    if (logs) { /* worker.access.exchange(exchange, status, size): the line formatted in C */
        PyObject *exchange = exchange_of(self, pending);
        if (exchange == NULL)
            goto cleanup;
        Py_SETREF(access, slot_get(worker, &slots[W_ACCESS]));
        if (access == NULL)
            goto cleanup;
        PyObject *args[4] = {access, exchange, status, size};
        PyObject *logged = PyObject_VectorcallMethod(cstate.str_exchange, args, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                                     NULL);
        if (logged == NULL)
            goto cleanup;
        Py_DECREF(logged);
    }
    if (self->transport == Py_None) { /* gone while --max-requests retired the worker */
        result = after_response(self, pending);
        goto cleanup;
    }
    PyObject *transport = Py_NewRef(self->transport);
    PyObject *wargs[2] = {transport, data};
    PyObject *written = method_call(&methods[M_WRITE], wargs, 2);
    Py_DECREF(transport);
    if (written == NULL)
        goto cleanup;
    Py_DECREF(written);
    background = slot_get(request, &slots[R_BACKGROUND]);
    if (background == NULL)
        goto cleanup;
    int queued = 0;
    if (background == Py_None && self->keep_alive == Py_True && self->reading_paused != Py_True) {
        queued = (int)PyObject_Size(self->pipeline);
        if (queued < 0)
            goto cleanup;
    }
    if (background != Py_None || self->keep_alive != Py_True || queued || self->reading_paused == Py_True) {
        result = after_response(self, pending);
        goto cleanup;
    }
    /* The common case, kept short: nothing to schedule, nothing queued. */
    Py_SETREF(self->exchange, Py_NewRef(Py_None));
    Py_SETREF(self->busy, Py_NewRef(Py_False));
    if (slot_set(request, &slots[R_RESPONDED], Py_True) < 0)
        goto cleanup;
    now = PyObject_CallNoArgs(self->clock);
    if (now == NULL)
        goto cleanup;
    Py_SETREF(self->last_activity, now);
    result = Py_NewRef(Py_None);
cleanup:
    Py_XDECREF(access);
    Py_XDECREF(size);
    Py_XDECREF(handled);
    Py_XDECREF(limit);
    Py_XDECREF(status);
    Py_XDECREF(background);
    return result;
}

/* The exception being raised, handled as an `except ... as exc:` clause would: fn(arg, exc)
 * called with it as the exception being handled (what it raises gets it as __context__). */
static PyObject *
handle_exception(PyObject *fn, PyObject *arg)
{
    PyObject *value = catzilla_take_exception();
    PyObject *old_type, *old_value, *old_traceback;
    PyErr_GetExcInfo(&old_type, &old_value, &old_traceback);
    /* steals its three arguments */
    PyErr_SetExcInfo(Py_NewRef(Py_TYPE(value)), Py_NewRef(value), PyException_GetTraceback(value));
    PyObject *result = PyObject_CallFunctionObjArgs(fn, arg, value, NULL);
    PyErr_SetExcInfo(old_type, old_value, old_traceback);
    Py_DECREF(value);
    return result;
}

/* A route of Executor.straight, as `how` says, run to its outcome, (response, data). True or
 * False (whether the handler takes the request): Executor's run_inline, the handler called
 * and its coroutine finished by finish_inline; a PlainInvoke: the same with the handler's
 * parameters bound by it (Executor.start's PlainInvoke branch). Anything else is a chain
 * that cannot suspend (its pipeline's run_inline): Executor.start's chain branch, run_chain.
 * An exception out of any of them answered by failure(). */
static PyObject *
inline_outcome(Connection *self, Pending *pending, PyObject *route, PyObject *request, PyObject *how,
               PyObject *common, PyObject *head_only)
{
    PyObject *endpoint = NULL, *coroutine = NULL, *outcome = NULL, *result = NULL;

    if (slot_set(cstate.inline_state, &slots[INLINE_REQUEST], request) < 0)
        return NULL;
    int invoke = catzilla_is_plain_invoke(how);
    if (how != Py_True && how != Py_False && !invoke) {
        outcome = catzilla_run_chain(how, request, common, head_only);
    }
    else {
        /* In a copy of the current context, as a Task would run it: what the handler sets
         * stays with its request (the loop's context, and a batch's, are shared). */
        PyObject *context = PyContext_CopyCurrent();
        if (context != NULL && PyContext_Enter(context) < 0)
            Py_CLEAR(context);
        if (context != NULL) /* (else a MemoryError, answered as below) */
            endpoint = slot_get(route, &slots[ROUTE_ENDPOINT]);
        if (endpoint != NULL && invoke) {
            PyObject *args[2] = {endpoint, request};
            coroutine = PyObject_Vectorcall(how, args, 2, NULL); /* bound and called: a 422 is failure()'s */
        }
        else if (endpoint != NULL) {
            coroutine = how == Py_True ? PyObject_CallOneArg(endpoint, request) : PyObject_CallNoArgs(endpoint);
        }
        if (coroutine != NULL) {
            PyObject *args[4] = {coroutine, route, common, head_only};
            outcome = PyObject_Vectorcall(cstate.finish_inline, args, 4, NULL);
        }
        if (context != NULL && PyContext_Exit(context) < 0)
            Py_CLEAR(outcome);
        Py_XDECREF(context);
    }
    if (outcome == NULL && (PyErr_ExceptionMatches(PyExc_Exception)
                            || PyErr_ExceptionMatches(PyExc_SystemExit))) {
        /* except HANDLER_ERRORS as exc: response, data = failure(exchange, exc) */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback); /* the Exchange made with no exception set */
        PyObject *exchange = exchange_of(self, pending);
        if (exchange == NULL) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
        }
        else {
            PyErr_Restore(type, value, traceback);
            outcome = handle_exception(cstate.failure, exchange);
        }
    }
    /* finally: inline.request = None, whatever happened */
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    int reset = slot_set(cstate.inline_state, &slots[INLINE_REQUEST], Py_None);
    if (type != NULL) {
        if (reset < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, traceback);
        goto cleanup;
    }
    if (reset < 0 || outcome == NULL)
        goto cleanup;
    if (!PyTuple_CheckExact(outcome) || PyTuple_GET_SIZE(outcome) != 2) {
        PyErr_SetString(PyExc_TypeError, "an inline outcome is (response, data)");
        goto cleanup;
    }
    result = Py_NewRef(outcome);
cleanup:
    Py_XDECREF(endpoint);
    Py_XDECREF(coroutine);
    Py_XDECREF(outcome);
    return result;
}

/* A route of Executor.straight run and answered at once. */
static PyObject *
run_inline(Connection *self, Pending *pending, PyObject *route, PyObject *request, PyObject *how,
           PyObject *common, PyObject *head_only)
{
    PyObject *outcome = inline_outcome(self, pending, route, request, how, common, head_only);
    if (outcome == NULL)
        return NULL;
    PyObject *result = complete(self, pending, PyTuple_GET_ITEM(outcome, 0), PyTuple_GET_ITEM(outcome, 1));
    Py_DECREF(outcome);
    return result;
}

static PyTypeObject ConnectionType;

/* An exchange deferred to the executor's InlineBatch, its fields read back as handle() had
 * them, each held while user code runs (handle() held them the same way); -1 if one was
 * deleted or the connection is not one. release() lets them go. */
static int
pending_of(PyObject *exchange, Pending *pending)
{
    PyObject **at = catzilla_exchange_slots(exchange);
    for (int i = 0; i < 8; i++) {
        if (at[i] == NULL) {
            PyErr_SetString(PyExc_AttributeError, "a deferred exchange lost one of its fields");
            return -1;
        }
    }
    if (!PyObject_TypeCheck(at[EX_CONNECTION], &ConnectionType)) {
        PyErr_SetString(PyExc_TypeError, "a deferred exchange's connection is a Connection");
        return -1;
    }
    pending->exchange = exchange;
    for (int i = 0; i < 8; i++)
        pending->fields[i] = Py_NewRef(at[i]);
    return 0;
}

static void
release(Pending *pending)
{
    for (int i = 0; i < 8; i++)
        Py_DECREF(pending->fields[i]);
}

/* For ext/batch.c: the outcome of a deferred inline request, (response, data). */
PyObject *
catzilla_inline_outcome(PyObject *exchange, PyObject *how)
{
    Pending pending;
    if (pending_of(exchange, &pending) < 0)
        return NULL;
    PyObject **at = pending.fields;
    Connection *self = (Connection *)at[EX_CONNECTION];
    Py_SETREF(self->exchange, Py_NewRef(exchange)); /* as exchange_of() left it */
    PyObject *outcome = inline_outcome(self, &pending, at[EX_ROUTE], at[EX_REQUEST], how, at[EX_COMMON],
                                       at[EX_HEAD_ONLY]);
    release(&pending);
    return outcome;
}

/* For ext/batch.c: that outcome written (HttpProtocol.complete's usual case). */
PyObject *
catzilla_inline_complete(PyObject *exchange, PyObject *outcome)
{
    Pending pending;
    if (pending_of(exchange, &pending) < 0)
        return NULL;
    PyObject *result = complete((Connection *)pending.fields[EX_CONNECTION], &pending, PyTuple_GET_ITEM(outcome, 0),
                                PyTuple_GET_ITEM(outcome, 1));
    release(&pending);
    return result;
}

/* Executor.start's SYNC branch, for a route of Executor.straight whose handler is a `def`:
 * `how` is (admit, done, run_in, job, refuse). The job is admitted to the pool with a copy
 * of the context, or refused with a 503 (--max-queue). */
static PyObject *
hand_off(Connection *self, Pending *pending, PyObject *how)
{
    if (PyTuple_GET_SIZE(how) != 5) {
        PyErr_SetString(PyExc_TypeError, "a pool route's hand-off is (admit, done, run_in, job, refuse)");
        return NULL;
    }
    PyObject *exchange = exchange_of(self, pending); /* borrowed */
    if (exchange == NULL)
        return NULL;
    PyObject **at = catzilla_exchange_slots(exchange);
    Py_XSETREF(at[EX_OWED], Py_NewRef(Py_True)); /* before the job exists: its thread checks it */
    PyObject *context = PyContext_CopyCurrent();
    if (context == NULL)
        return NULL;
    PyObject *args[6] = {PyTuple_GET_ITEM(how, 1), PyTuple_GET_ITEM(how, 2), context, PyTuple_GET_ITEM(how, 3),
                         exchange, Py_None};
    PyObject *admitted = PyObject_Vectorcall(PyTuple_GET_ITEM(how, 0), args, 6, NULL);
    Py_DECREF(context);
    if (admitted == NULL)
        return NULL;
    int ok = PyObject_IsTrue(admitted);
    Py_DECREF(admitted);
    if (ok < 0)
        return NULL;
    if (ok)
        Py_RETURN_NONE;
    Py_XSETREF(at[EX_OWED], Py_NewRef(Py_False));
    PyObject *refusal[2] = {exchange, cstate.str_max_queue};
    return PyObject_Vectorcall(PyTuple_GET_ITEM(how, 4), refusal, 2, NULL);
}

/* For ext/batch.c: a deferred `def` route's request handed to the pool (or refused). */
PyObject *
catzilla_inline_hand_off(PyObject *exchange, PyObject *how)
{
    Pending pending;
    if (pending_of(exchange, &pending) < 0)
        return NULL;
    PyObject *result = hand_off((Connection *)pending.fields[EX_CONNECTION], &pending, how);
    release(&pending);
    return result;
}

/* HttpProtocol._handle for a request a route answers; anything else (a probe, 404, 405)
 * goes to the Python method before anything has changed. */
static PyObject *
handle(Connection *self, PyObject *request, PyObject *keep_alive)
{
    PyObject *path = NULL, *method = NULL, *probes = NULL, *resolved = NULL, *closing = NULL;
    PyObject *common = NULL, *version = NULL, *row = NULL, *started = NULL;
    Pending pending = {.exchange = NULL};
    PyObject *result = NULL;
    PyObject *worker = self->worker;

    path = slot_get(request, &slots[R_PATH]);
    method = slot_get(request, &slots[R_METHOD]);
    probes = slot_get(worker, &slots[W_PROBES]);
    if (path == NULL || method == NULL || probes == NULL)
        goto cleanup;
    int probe = 0;
    if (!PyDict_CheckExact(probes))
        probe = 1; /* the Python way says what it is */
    else if (PyDict_GET_SIZE(probes) != 0 && (probe = PyDict_Contains(probes, path)) < 0)
        goto cleanup;
    PyObject *route = NULL; /* borrowed (from the table, or from `resolved`) */
    if (!probe) {
        PyObject *table = PyDict_GetItemWithError(self->routes, path);
        if (table != NULL && PyDict_CheckExact(table))
            route = PyDict_GetItemWithError(table, method);
        if (route == NULL && PyErr_Occurred())
            goto cleanup;
        if (route == NULL) { /* a template, or none: resolve(method, path) -> (route, params, allow) */
            resolved = PyObject_CallFunctionObjArgs(self->resolve, method, path, NULL);
            if (resolved == NULL)
                goto cleanup;
            if (!PyTuple_CheckExact(resolved) || PyTuple_GET_SIZE(resolved) != 3) {
                PyErr_SetString(PyExc_TypeError, "resolve() returns (route, params, allow)");
                goto cleanup;
            }
            route = PyTuple_GET_ITEM(resolved, 0);
            if (route == Py_None)
                route = NULL;
            else if (PyTuple_GET_ITEM(resolved, 1) != Py_None
                     && slot_set(request, &slots[R_PATH_PARAMS], PyTuple_GET_ITEM(resolved, 1)) < 0)
                goto cleanup;
        }
    }
    if (route == NULL) { /* a probe, 404 or 405: resolved again there, on this rare way */
        result = PyObject_CallMethodObjArgs((PyObject *)self, cstate.str_handle, request, keep_alive, NULL);
        goto cleanup;
    }
    Py_SETREF(self->busy, Py_NewRef(Py_True));
    closing = slot_get(worker, &slots[W_CLOSE_CONNECTIONS]);
    if (closing == NULL)
        goto cleanup;
    int keep = PyObject_IsTrue(keep_alive), close = PyObject_IsTrue(closing);
    if (keep < 0 || close < 0)
        goto cleanup;
    keep = keep && !close;
    Py_SETREF(self->keep_alive, Py_NewRef(keep ? Py_True : Py_False));
    if (!keep) {
        common = slot_get(worker, &slots[W_COMMON_CLOSE]);
    }
    else {
        version = slot_get(request, &slots[R_HTTP_VERSION]);
        if (version == NULL)
            goto cleanup;
        int eleven = PyUnicode_Check(version) && PyUnicode_CompareWithASCIIString(version, "1.1") == 0;
        common = slot_get(worker, &slots[eleven ? W_COMMON_KEEP_ALIVE : W_COMMON_KEEP_ALIVE_10]);
    }
    row = slot_get(route, &slots[ROUTE_INDEX]);
    if (common == NULL || row == NULL)
        goto cleanup;
    PyObject *head_only = PyUnicode_Check(method) && PyUnicode_CompareWithASCIIString(method, "HEAD") == 0
        ? Py_True : Py_False;
    if (self->stats_slot == Py_None) {
        started = PyObject_CallNoArgs(cstate.perf_counter);
    }
    else {
        PyObject *args[2] = {self->stats_slot, row};
        started = method_call(&methods[M_BEGIN], args, 2);
    }
    if (started == NULL)
        goto cleanup;
    PyObject *const fields[8] = {(PyObject *)self, request, route, common, head_only,
                                 keep ? Py_True : Py_False, row, started};
    memcpy(pending.fields, fields, sizeof(fields));
    PyObject *how = PyDict_GetItemWithError(self->straight, route); /* borrowed */
    if (how != NULL) {
        Py_INCREF(how); /* the chain runs user code, which could change the dict */
        if (self->batch != Py_None) { /* run with the loop turn's others */
            PyObject *exchange = exchange_of(self, &pending);
            if (exchange != NULL && catzilla_batch_add(self->batch, exchange, how) == 0)
                result = Py_NewRef(Py_None);
        }
        else if (PyTuple_CheckExact(how)) {
            result = hand_off(self, &pending, how);
        }
        else {
            result = run_inline(self, &pending, route, request, how, common, head_only);
        }
        Py_DECREF(how);
    }
    else if (!PyErr_Occurred()) {
        PyObject *exchange = exchange_of(self, &pending);
        if (exchange == NULL)
            goto cleanup;
        PyObject *args[2] = {self->executor, exchange};
        result = PyObject_VectorcallMethod(cstate.str_start, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
cleanup:
    Py_XDECREF(path);
    Py_XDECREF(method);
    Py_XDECREF(probes);
    Py_XDECREF(resolved);
    Py_XDECREF(closing);
    Py_XDECREF(common);
    Py_XDECREF(version);
    Py_XDECREF(row);
    Py_XDECREF(started);
    Py_XDECREF(pending.exchange);
    return result;
}

/* on_message_complete(): httptools' call at the end of every request. */
static PyObject *
connection_on_message_complete(Connection *self, PyObject *Py_UNUSED(ignored))
{
    if (cstate.idle == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "catzilla.worker.protocol has not registered its names");
        return NULL;
    }
    if (!usual_state(self))
        return call_method((PyObject *)self, cstate.str_message_complete);
    PyObject *args[4] = {self->collector, self->parser, cstate.empty, self->client};
    PyObject *taken = method_call(&methods[M_TAKE_REQUEST], args, 4);
    if (taken == NULL)
        return NULL;
    if (taken == Py_None) { /* an unusual head, left untouched for the Python way */
        Py_DECREF(taken);
        return call_method((PyObject *)self, cstate.str_message_complete);
    }
    PyObject *result = NULL;
    if (!PyTuple_CheckExact(taken) || PyTuple_GET_SIZE(taken) != 3) {
        PyErr_SetString(PyExc_TypeError, "take_request() returns (request, keep_alive, forwarded)");
        goto cleanup;
    }
    PyObject *request = PyTuple_GET_ITEM(taken, 0), *keep_alive = PyTuple_GET_ITEM(taken, 1);
    int forwarded = PyObject_IsTrue(PyTuple_GET_ITEM(taken, 2));
    if (forwarded < 0)
        goto cleanup;
    if (forwarded && self->trusted == Py_True) {
        PyObject *map = slot_get(request, &slots[R_HEADER_MAP]);
        if (map == NULL)
            goto cleanup;
        PyObject *done = PyObject_CallMethodObjArgs((PyObject *)self, cstate.str_at_edge, request, map, NULL);
        Py_DECREF(map);
        if (done == NULL)
            goto cleanup;
        Py_DECREF(done);
    }
    Py_SETREF(self->reception, Py_NewRef(cstate.idle));
    result = handle(self, request, keep_alive);
cleanup:
    Py_DECREF(taken);
    return result;
}

/* data_received(data): the transport's call with every read. HttpProtocol's, step for step:
 * counted, timed, fed to the parser (whose callbacks do the rest); what feed_data raises is
 * answered by _feed_failed, a 100 Continue owed by _answer_continue. */
static PyObject *
connection_data_received(Connection *self, PyObject *data)
{
    if (cstate.head == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "catzilla.worker.protocol has not registered its names");
        return NULL;
    }
    if (self->rejection != Py_None)
        Py_RETURN_NONE; /* the stream can no longer be trusted; we are closing */
    Py_ssize_t n = PyObject_Size(data);
    if (n < 0)
        return NULL;
    PyObject *size = PyLong_FromSsize_t(n);
    if (size == NULL)
        return NULL;
    Py_SETREF(size, PyNumber_Add(self->bytes_in, size));
    if (size == NULL)
        return NULL;
    Py_SETREF(self->bytes_in, size);
    PyObject *now = PyObject_CallNoArgs(self->clock);
    if (now == NULL)
        return NULL;
    Py_SETREF(self->last_activity, now);
    if (self->reception == cstate.idle) {
        Py_SETREF(self->reception, Py_NewRef(cstate.head));
        Py_SETREF(self->head_started, Py_NewRef(now));
    }
    PyObject *parser = Py_NewRef(self->parser);
    PyObject *args[2] = {parser, data};
    PyObject *fed = method_call(&methods[M_FEED_DATA], args, 2);
    Py_DECREF(parser);
    if (fed == NULL) {
        if (!PyErr_ExceptionMatches(cstate.feed_errors))
            return NULL;
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback); /* no look-up with an exception set */
        PyObject *bound = PyObject_GetAttr((PyObject *)self, cstate.str_feed_failed);
        if (bound == NULL) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            return NULL;
        }
        PyErr_Restore(type, value, traceback);
        PyObject *result = handle_exception(bound, data);
        Py_DECREF(bound);
        return result;
    }
    Py_DECREF(fed);
    PyObject *awaiting = slot_get(self->collector, &slots[C_AWAITING_CONTINUE]);
    if (awaiting == NULL)
        return NULL;
    int due = PyObject_IsTrue(awaiting);
    Py_DECREF(awaiting);
    if (due < 0)
        return NULL;
    if (due)
        return call_method((PyObject *)self, cstate.str_fed);
    Py_RETURN_NONE;
}

#define FIELD(name, member, doc) {name, T_OBJECT_EX, offsetof(Connection, member), 0, doc}

static PyMemberDef connection_members[] = {
    FIELD("worker", worker, "The worker that accepted the connection."),
    FIELD("executor", executor, "The worker's executor."),
    FIELD("transport", transport, "The transport, None once the connection is lost."),
    FIELD("parser", parser, "The httptools parser (or what stands in for it)."),
    FIELD("collector", collector, "The HeaderCollector of the head being parsed."),
    FIELD("client", client, "The peer's Address, or None."),
    FIELD("clock", clock, "The loop's time()."),
    FIELD("rejection", rejection, "(status, reason) of a request refused: the stream is no longer read."),
    FIELD("reception", reception, "Where receiving the next request is (Reception)."),
    FIELD("head_started", head_started, "clock() when the head being received began to arrive."),
    FIELD("last_activity", last_activity, "clock() when the connection last did something."),
    FIELD("bytes_in", bytes_in, "Bytes received since the last request was counted."),
    FIELD("receiving", receiving, "The request whose body a route receives its own way, or None."),
    FIELD("body", body, "The chunks of the body being received."),
    FIELD("edge", edge, "Every request needs _at_edge (TLS, a root path)."),
    FIELD("trusted", trusted, "The peer is a trusted proxy."),
    FIELD("busy", busy, "A request is being handled."),
    FIELD("keep_alive", keep_alive, "The connection stays open after the current response."),
    FIELD("pipeline", pipeline, "Requests (and refusals) queued behind the running one."),
    FIELD("exchange", exchange, "The Exchange of the request being handled, or None."),
    FIELD("reading_paused", reading_paused, "Reading is paused (pipelining, a slow handler)."),
    FIELD("static", routes, "The router's table of paths without parameters."),
    FIELD("resolve", resolve, "The router's resolve(method, path)."),
    FIELD("straight", straight, "Executor.straight: the routes run without Executor.start."),
    FIELD("stats_slot", stats_slot, "The worker's stats slot, or None."),
    FIELD("batch", batch, "Executor.batch: the InlineBatch inline routes are deferred to, or None."),
    {NULL},
};

/* complete(exchange, response, data): the response to the current request is ready (the
 * executor's call, for a route not run straight): the usual case as above, else the Python
 * method, HttpProtocol._complete. */
static PyObject *
connection_complete(Connection *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "complete(exchange, response, data) takes 3 arguments");
        return NULL;
    }
    Pending pending;
    PyObject **at = catzilla_exchange_slots(args[0]);
    int whole = at != NULL;
    for (int i = 0; whole && i < 8; i++)
        whole = at[i] != NULL;
    if (cstate.idle == NULL || !whole)
        return PyObject_CallMethodObjArgs((PyObject *)self, cstate.str_complete, args[0], args[1], args[2], NULL);
    memcpy(pending.fields, at, sizeof(pending.fields));
    pending.exchange = Py_NewRef(args[0]);
    PyObject *result = complete(self, &pending, args[1], args[2]);
    Py_DECREF(pending.exchange);
    return result;
}

static PyMethodDef connection_methods[] = {
    {"data_received", (PyCFunction)connection_data_received, METH_O,
     "Bytes from the transport: counted, timed and fed to the parser."},
    {"on_message_complete", (PyCFunction)connection_on_message_complete, METH_NOARGS,
     "The end of a request (httptools' callback): the usual one served here, any other the "
     "Python way (_message_complete, _handle, _complete)."},
    {"complete", (PyCFunction)(void (*)(void))connection_complete, METH_FASTCALL,
     "complete(exchange, response, data): the response to the current request is ready: "
     "write it, then move on (HttpProtocol._complete is the reference)."},
    {NULL},
};

static PyTypeObject ConnectionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.Connection",
    .tp_doc = "The per-request state of an HTTP/1.1 connection (HttpProtocol's base).",
    .tp_basicsize = sizeof(Connection),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = connection_new,
    .tp_dealloc = (destructor)connection_dealloc,
    .tp_traverse = (traverseproc)connection_traverse,
    .tp_clear = (inquiry)connection_clear,
    .tp_members = connection_members,
    .tp_methods = connection_methods,
};

/* register_connection(IDLE, HEAD, feed_errors, failure, inline, finish_inline, perf_counter):
 * called once by catzilla.worker.protocol, whose names the usual request's way uses. */
static PyObject *
register_connection(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyTuple_Check(args[2]) || !PyCallable_Check(args[3]) || !PyCallable_Check(args[5])
            || !PyCallable_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "register_connection(IDLE, HEAD, feed_errors: tuple, failure, "
                                         "inline, finish_inline, perf_counter)");
        return NULL;
    }
    Py_XSETREF(cstate.idle, Py_NewRef(args[0]));
    Py_XSETREF(cstate.head, Py_NewRef(args[1]));
    Py_XSETREF(cstate.feed_errors, Py_NewRef(args[2]));
    Py_XSETREF(cstate.failure, Py_NewRef(args[3]));
    Py_XSETREF(cstate.inline_state, Py_NewRef(args[4]));
    Py_XSETREF(cstate.finish_inline, Py_NewRef(args[5]));
    Py_XSETREF(cstate.perf_counter, Py_NewRef(args[6]));
    Py_RETURN_NONE;
}

static PyMethodDef connection_functions[] = {
    {"register_connection", (PyCFunction)(void (*)(void))register_connection, METH_FASTCALL,
     "register_connection(IDLE, HEAD, feed_errors, failure, inline, finish_inline, perf_counter)"},
    {NULL},
};

int
catzilla_connection_init(PyObject *module)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&cstate.str_message_complete, "_message_complete"},
        {&cstate.str_at_edge, "_at_edge"},
        {&cstate.str_handle, "_handle"},
        {&cstate.str_complete, "_complete"},
        {&cstate.str_after_response, "_after_response"},
        {&cstate.str_status_code, "status_code"},
        {&cstate.str_retire, "retire"},
        {&cstate.str_start, "start"},
        {&cstate.str_sends_file, "sends_file"},
        {&cstate.str_exchange, "exchange"},
        {&cstate.str_max_queue, "max-queue"},
        {&cstate.str_feed_failed, "_feed_failed"},
        {&cstate.str_fed, "_answer_continue"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (catzilla_intern(names[i].slot, names[i].text) < 0)
            return -1;
    }
    for (int i = 0; i < NSLOTS; i++) {
        if (catzilla_intern(&slots[i].name, slots[i].text) < 0)
            return -1;
    }
    for (int i = 0; i < NMETHODS; i++) {
        if (catzilla_intern(&methods[i].name, methods[i].text) < 0)
            return -1;
    }
    cstate.empty = PyBytes_FromStringAndSize(NULL, 0);
    cstate.one = PyLong_FromLong(1);
    cstate.zero = PyLong_FromLong(0);
    if (cstate.empty == NULL || cstate.one == NULL || cstate.zero == NULL)
        return -1;
    if (PyType_Ready(&ConnectionType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Connection", (PyObject *)&ConnectionType) < 0)
        return -1;
    return PyModule_AddFunctions(module, connection_functions);
}
