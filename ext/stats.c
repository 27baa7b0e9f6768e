/* Live request statistics in a shared-memory block.
 *
 * The master maps one block before it forks. Each worker owns one slot and is its only
 * writer on the request path (the event loop thread), so a counter update is a relaxed
 * atomic load and store: no lock, no system call, no locked instruction. Readers (any
 * process) load every 64-bit word atomically, so no value is ever torn.
 *
 * When a worker is gone, the master folds its slot into the retired totals and frees the
 * slot. The fold runs under a sequence counter (odd while folding): a reader that saw the
 * counter change retries, so it never counts a worker twice or not at all, and totals
 * never go backwards.
 *
 * Layout (all 64-bit words):
 *   header | slot 0 | slot 1 | ... | retired
 *   slot    = slot header | route[0] ... route[nroutes-1]
 *   retired = route[0] ... route[nretired-1] (keyed by route name)
 *   route   = name (KEY_BYTES) | kind | requests | errors | in_flight | blocked | duration_us
 *             | histogram | cpu_calls | cpu_us | wall_us | cpu_histogram
 *
 * WebSockets are counted per slot, not per route (a connection is not a request): open now,
 * accepted since start, messages received and sent; a gone worker's counts but the open
 * ones fold into the header's retired totals.
 *
 * The CPU counters of a sync route are written by whichever thread ran the handler (a
 * pool thread, or the loop with a CPU lane's answer): they are added with atomic
 * read-modify-write instructions, so they stay exact with any number of writers and no GIL.
 * A slot's role says what its process is: a worker (counted in the totals) or a CPU-lane
 * process (its header counts jobs, which the workers have already counted as requests).
 */
#include "native.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define STATS_MAGIC 0x5354415453435a33ULL /* "CZSTATS3": version 3 counts WebSockets */
#define KEY_BYTES 96                       /* "METHOD /path" beyond this is cut */
#define BUCKETS 32                         /* log2(µs): 1 µs .. over an hour */

typedef uint64_t word;

typedef struct {
    word magic, nslots, nroutes, nretired, sequence;
    word retired_requests, retired_errors, retired_bytes_in, retired_bytes_out;
    word retired_ws_accepted, retired_ws_messages_in, retired_ws_messages_out;
    word reserved[4];
} BlockHeader;

typedef struct {
    char key[KEY_BYTES];
    word kind; /* 0 sync, 1 async, 2 sync in the CPU lane */
    word requests, errors, in_flight, blocked;
    word duration_us; /* sum of latencies, for Prometheus' _sum */
    word histogram[BUCKETS];
    word cpu_calls, cpu_us, wall_us; /* handler calls measured: thread CPU time, wall time */
    word cpu_histogram[BUCKETS];     /* CPU time per call, log2(µs) as `histogram` */
} RouteCounters;

typedef struct {
    word active, pid, generation, nroutes;
    word requests, errors, in_flight, bytes_in, bytes_out;
    word pool_size, pool_busy, pool_queued, loop_lag_us, loop_lag_max_us;
    word role; /* ROLE_WORKER or ROLE_LANE */
    word ws_open, ws_accepted, ws_messages_in, ws_messages_out; /* WebSockets, from the loop */
    word reserved[1];
} SlotHeader;

#define ROLE_WORKER 0
#define ROLE_LANE 1


static inline word load(const word *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void store(word *p, word v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
/* Single-writer increment: plain load and store, each atomic on its own. */
static inline void bump(word *p, word by) { store(p, load(p) + by); }
/* Any-writer increment, for the counters pool threads write. */
static inline void add(word *p, word by) { __atomic_fetch_add(p, by, __ATOMIC_RELAXED); }

static size_t
slot_bytes(word nroutes)
{
    return sizeof(SlotHeader) + (size_t)nroutes * sizeof(RouteCounters);
}

/* Dimensions a block may have: far beyond any server, small enough that no size overflows. */
#define MAX_SLOTS 4096
#define MAX_ROUTES 65536
#define MAX_RETIRED (1 << 20)

static int
dimensions_ok(word nslots, word nroutes, word nretired)
{
    return nslots >= 1 && nslots <= MAX_SLOTS && nroutes >= 1 && nroutes <= MAX_ROUTES
        && nretired >= 1 && nretired <= MAX_RETIRED;
}

/* Only for dimensions_ok() dimensions: then this cannot overflow. */
static size_t
block_bytes(word nslots, word nroutes, word nretired)
{
    return sizeof(BlockHeader) + (size_t)nslots * slot_bytes(nroutes)
        + (size_t)nretired * sizeof(RouteCounters);
}

/* ---- StatsBlock: a view over the shared buffer --------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    BlockHeader *header;  /* NULL until __init__ succeeds */
    int has_view;
    /* The dimensions, checked once at __init__: never re-read from the shared header,
     * which any process that can write the file could change under us. */
    word nslots, nroutes, nretired;
} StatsBlock;

static PyTypeObject StatsBlock_Type;
static PyTypeObject WorkerSlot_Type;

static SlotHeader *
block_slot(StatsBlock *self, word index)
{
    char *base = (char *)self->header + sizeof(BlockHeader);
    return (SlotHeader *)(base + (size_t)index * slot_bytes(self->nroutes));
}

static RouteCounters *
slot_routes(SlotHeader *slot)
{
    return (RouteCounters *)((char *)slot + sizeof(SlotHeader));
}

static RouteCounters *
block_retired(StatsBlock *self)
{
    return (RouteCounters *)((char *)self->header + sizeof(BlockHeader)
                             + (size_t)self->nslots * slot_bytes(self->nroutes));
}

static int
StatsBlock_init(StatsBlock *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"buffer", "nslots", "nroutes", "nretired", "create", NULL};
    PyObject *buffer;
    unsigned long long nslots = 0, nroutes = 0, nretired = 0;
    int create = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|KKKp", kwlist, &buffer, &nslots,
                                     &nroutes, &nretired, &create))
        return -1;
    if (self->has_view) {
        /* WorkerSlots may point into the current view: it must outlive them. */
        PyErr_SetString(PyExc_RuntimeError, "a StatsBlock is initialised once");
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    self->has_view = 1;
    BlockHeader *header = (BlockHeader *)self->view.buf;
    if (((uintptr_t)self->view.buf & 7) != 0) {
        PyErr_SetString(PyExc_ValueError, "stats buffer must be 8-byte aligned");
        goto error;
    }
    if ((size_t)self->view.len < sizeof(BlockHeader)) {
        PyErr_SetString(PyExc_ValueError, "stats buffer too small");
        goto error;
    }
    if (create) {
        if (!dimensions_ok(nslots, nroutes, nretired)) {
            PyErr_SetString(PyExc_ValueError, "stats block dimensions out of range");
            goto error;
        }
        if ((size_t)self->view.len < block_bytes(nslots, nroutes, nretired)) {
            PyErr_Format(PyExc_ValueError, "stats buffer needs %zu bytes",
                         block_bytes(nslots, nroutes, nretired));
            goto error;
        }
        memset(self->view.buf, 0, block_bytes(nslots, nroutes, nretired));
        header->nslots = nslots;
        header->nroutes = nroutes;
        header->nretired = nretired;
        __atomic_store_n(&header->magic, STATS_MAGIC, __ATOMIC_RELEASE);
    }
    else {
        if (__atomic_load_n(&header->magic, __ATOMIC_ACQUIRE) != STATS_MAGIC) {
            PyErr_SetString(PyExc_ValueError, "not a Catzilla stats block");
            goto error;
        }
        nslots = header->nslots;
        nroutes = header->nroutes;
        nretired = header->nretired;
        if (!dimensions_ok(nslots, nroutes, nretired)) {
            PyErr_SetString(PyExc_ValueError, "stats block has impossible dimensions");
            goto error;
        }
        if ((size_t)self->view.len < block_bytes(nslots, nroutes, nretired)) {
            PyErr_SetString(PyExc_ValueError, "stats block is truncated");
            goto error;
        }
    }
    self->nslots = nslots;
    self->nroutes = nroutes;
    self->nretired = nretired;
    self->header = header;
    return 0;
error:
    PyBuffer_Release(&self->view);
    self->has_view = 0;
    return -1;
}

/* Methods on a block whose __init__ never succeeded have nothing to work on. */
static int
block_ready(StatsBlock *self)
{
    if (self->header == NULL) {
        PyErr_SetString(PyExc_ValueError, "StatsBlock is not initialised");
        return 0;
    }
    return 1;
}

static void
StatsBlock_dealloc(StatsBlock *self)
{
    if (self->has_view)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
StatsBlock_size(PyObject *cls, PyObject *args)
{
    unsigned long long nslots, nroutes, nretired;
    if (!PyArg_ParseTuple(args, "KKK", &nslots, &nroutes, &nretired))
        return NULL;
    if (!dimensions_ok(nslots, nroutes, nretired)) {
        PyErr_SetString(PyExc_ValueError, "stats block dimensions out of range");
        return NULL;
    }
    return PyLong_FromSize_t(block_bytes(nslots, nroutes, nretired));
}

static int
write_key(char *dest, PyObject *key)
{
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(key, &length);
    if (utf8 == NULL)
        return -1;
    if (length > KEY_BYTES - 1) {
        length = KEY_BYTES - 1;
        /* Cut before a character, not inside one: readers decode the key as UTF-8. */
        while (length > 0 && ((unsigned char)utf8[length] & 0xC0) == 0x80)
            length--;
    }
    memset(dest, 0, KEY_BYTES);
    memcpy(dest, utf8, (size_t)length);
    return 0;
}

/* ---- WorkerSlot: one worker's writer handle --------------------------------------------- */

typedef struct {
    PyObject_HEAD
    StatsBlock *block; /* keeps the mapping alive */
    SlotHeader *slot;
    RouteCounters *routes;
    word nroutes;
    word index;
} WorkerSlot;

static PyObject *
StatsBlock_attach(StatsBlock *self, PyObject *args)
{
    unsigned long long index, pid, generation, role = ROLE_WORKER;
    PyObject *routes;
    PyObject *route_list;
    if (!PyArg_ParseTuple(args, "KKKO!|K", &index, &pid, &generation, &PyList_Type, &route_list, &role))
        return NULL;
    if (role != ROLE_WORKER && role != ROLE_LANE) {
        PyErr_SetString(PyExc_ValueError, "role is 0 (worker) or 1 (CPU lane)");
        return NULL;
    }
    if (!block_ready(self))
        return NULL;
    if (index >= self->nslots) {
        PyErr_SetString(PyExc_IndexError, "no such stats slot");
        return NULL;
    }
    /* A tuple copy: nothing a route's __bool__ does to the caller's list can free an item. */
    routes = PySequence_Tuple(route_list);
    if (routes == NULL)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(routes);
    if ((word)count > self->nroutes) {
        PyErr_Format(PyExc_ValueError, "the app has %zd routes, the stats block holds %llu",
                     count, (unsigned long long)self->nroutes);
        Py_DECREF(routes);
        return NULL;
    }
    SlotHeader *slot = block_slot(self, index);
    memset(slot, 0, slot_bytes(self->nroutes));
    RouteCounters *counters = slot_routes(slot);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(routes, i);
        PyObject *key;
        int kind;
        if (!PyArg_ParseTuple(item, "Ui", &key, &kind) || write_key(counters[i].key, key) < 0) {
            Py_DECREF(routes);
            return NULL;
        }
        if (kind < 0 || kind > 2) {
            PyErr_SetString(PyExc_ValueError, "a route's kind is 0 (sync), 1 (async) or 2 (CPU lane)");
            Py_DECREF(routes);
            return NULL;
        }
        counters[i].kind = (word)kind;
    }
    Py_DECREF(routes);
    slot->pid = pid;
    slot->generation = generation;
    slot->role = role;
    slot->nroutes = (word)count;
    __atomic_store_n(&slot->active, 1, __ATOMIC_RELEASE);

    WorkerSlot *handle = PyObject_New(WorkerSlot, &WorkerSlot_Type);
    if (handle == NULL)
        return NULL;
    Py_INCREF(self);
    handle->block = self;
    handle->slot = slot;
    handle->routes = counters;
    handle->nroutes = (word)count;
    handle->index = index;
    return (PyObject *)handle;
}

static double
monotonic_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* begin(route) -> start time: one more request in flight. */
static PyObject *
WorkerSlot_begin(WorkerSlot *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "begin(route_index)");
        return NULL;
    }
    Py_ssize_t route = PyLong_AsSsize_t(args[0]);
    if (route == -1 && PyErr_Occurred())
        return NULL;
    bump(&self->slot->in_flight, 1);
    if (route >= 0 && (word)route < self->nroutes)
        bump(&self->routes[route].in_flight, 1);
    return PyFloat_FromDouble(monotonic_seconds());
}

/* end(route, start, status, bytes_in, bytes_out): the request is answered. */
static PyObject *
WorkerSlot_end(WorkerSlot *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "end(route_index, start, status, bytes_in, bytes_out)");
        return NULL;
    }
    Py_ssize_t route = PyLong_AsSsize_t(args[0]);
    double start = PyFloat_AsDouble(args[1]);
    long status = PyLong_AsLong(args[2]);
    long long bytes_in = PyLong_AsLongLong(args[3]);
    long long bytes_out = PyLong_AsLongLong(args[4]);
    if (PyErr_Occurred())
        return NULL;
    SlotHeader *slot = self->slot;
    int error = status >= 500;
    bump(&slot->requests, 1);
    bump(&slot->in_flight, (word)-1);
    if (error)
        bump(&slot->errors, 1);
    if (bytes_in > 0)
        bump(&slot->bytes_in, (word)bytes_in);
    if (bytes_out > 0)
        bump(&slot->bytes_out, (word)bytes_out);
    if (route >= 0 && (word)route < self->nroutes) {
        RouteCounters *counters = &self->routes[route];
        double elapsed = monotonic_seconds() - start;
        word micros = elapsed > 0 ? (word)(elapsed * 1e6) : 0;
        int bucket = micros ? 64 - __builtin_clzll(micros) : 0;
        if (bucket >= BUCKETS)
            bucket = BUCKETS - 1;
        bump(&counters->requests, 1);
        bump(&counters->in_flight, (word)-1);
        if (error)
            bump(&counters->errors, 1);
        bump(&counters->histogram[bucket], 1);
        bump(&counters->duration_us, micros);
    }
    Py_RETURN_NONE;
}

/* One handler call's CPU and wall time on the route's row (atomic adds: any thread). */
static void
slot_add_cpu(WorkerSlot *self, Py_ssize_t route, word cpu_us, word wall_us)
{
    if (route < 0 || (word)route >= self->nroutes)
        return;
    int bucket = cpu_us ? 64 - __builtin_clzll(cpu_us) : 0;
    if (bucket >= BUCKETS)
        bucket = BUCKETS - 1;
    RouteCounters *counters = &self->routes[route];
    add(&counters->cpu_calls, 1);
    add(&counters->cpu_us, cpu_us);
    add(&counters->wall_us, wall_us);
    add(&counters->cpu_histogram[bucket], 1);
}

/* cpu(route, cpu_seconds, wall_seconds): one handler call's thread CPU and wall time. Safe
 * from any thread (atomic adds): pool threads call it as their handler returns. */
static PyObject *
WorkerSlot_cpu(WorkerSlot *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "cpu(route_index, cpu_seconds, wall_seconds)");
        return NULL;
    }
    Py_ssize_t route = PyLong_AsSsize_t(args[0]);
    double cpu = PyFloat_AsDouble(args[1]);
    double wall = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred())
        return NULL;
    /* NaN and negatives (a clock that stepped) count as 0; days of CPU are plenty. */
    slot_add_cpu(self, route, cpu > 0 && cpu < 1e11 ? (word)(cpu * 1e6) : 0,
                 wall > 0 && wall < 1e11 ? (word)(wall * 1e6) : 0);
    Py_RETURN_NONE;
}

/* websocket(opened, received, sent): a WebSocket accepted (opened 1) or ended (-1), and
 * messages received from and sent to clients; from the event loop, as begin() and end(). */
static PyObject *
WorkerSlot_websocket(WorkerSlot *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "websocket(opened, received, sent)");
        return NULL;
    }
    long opened = PyLong_AsLong(args[0]);
    long long received = PyLong_AsLongLong(args[1]);
    long long sent = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    SlotHeader *slot = self->slot;
    if (opened > 0) {
        bump(&slot->ws_open, 1);
        bump(&slot->ws_accepted, 1);
    }
    else if (opened < 0 && load(&slot->ws_open) > 0) {
        bump(&slot->ws_open, (word)-1);
    }
    if (received > 0)
        bump(&slot->ws_messages_in, (word)received);
    if (sent > 0)
        bump(&slot->ws_messages_out, (word)sent);
    Py_RETURN_NONE;
}

static PyObject *
WorkerSlot_blocked(WorkerSlot *self, PyObject *arg)
{
    Py_ssize_t route = PyLong_AsSsize_t(arg);
    if (route == -1 && PyErr_Occurred())
        return NULL;
    if (route >= 0 && (word)route < self->nroutes)
        __atomic_fetch_add(&self->routes[route].blocked, 1, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

/* gauges(pool_size, pool_busy, pool_queued, loop_lag_us): once a second, from the loop. */
static PyObject *
WorkerSlot_gauges(WorkerSlot *self, PyObject *args)
{
    unsigned long long size, busy, queued, lag;
    if (!PyArg_ParseTuple(args, "KKKK", &size, &busy, &queued, &lag))
        return NULL;
    SlotHeader *slot = self->slot;
    store(&slot->pool_size, size);
    store(&slot->pool_busy, busy);
    store(&slot->pool_queued, queued);
    store(&slot->loop_lag_us, lag);
    if (lag > load(&slot->loop_lag_max_us))
        store(&slot->loop_lag_max_us, lag);
    Py_RETURN_NONE;
}

static PyObject *
WorkerSlot_get_index(WorkerSlot *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->index);
}

static void
WorkerSlot_dealloc(WorkerSlot *self)
{
    Py_XDECREF(self->block);
    PyObject_Free(self);
}

static PyMethodDef WorkerSlot_methods[] = {
    {"begin", (PyCFunction)(void (*)(void))WorkerSlot_begin, METH_FASTCALL,
     "begin(route_index) -> start: count a request in flight."},
    {"end", (PyCFunction)(void (*)(void))WorkerSlot_end, METH_FASTCALL,
     "end(route_index, start, status, bytes_in, bytes_out): count an answered request."},
    {"cpu", (PyCFunction)(void (*)(void))WorkerSlot_cpu, METH_FASTCALL,
     "cpu(route_index, cpu_seconds, wall_seconds): one handler call's CPU and wall time (any thread)."},
    {"websocket", (PyCFunction)(void (*)(void))WorkerSlot_websocket, METH_FASTCALL,
     "websocket(opened, received, sent): a WebSocket accepted (1) or ended (-1), messages in and out."},
    {"blocked", (PyCFunction)WorkerSlot_blocked, METH_O,
     "blocked(route_index): the route's handler blocked the event loop once more."},
    {"gauges", (PyCFunction)WorkerSlot_gauges, METH_VARARGS,
     "gauges(pool_size, pool_busy, pool_queued, loop_lag_us)."},
    {NULL},
};

static PyGetSetDef WorkerSlot_getset[] = {
    {"index", (getter)WorkerSlot_get_index, NULL, "the slot this worker writes", NULL},
    {NULL},
};

static PyTypeObject WorkerSlot_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.WorkerSlot",
    .tp_basicsize = sizeof(WorkerSlot),
    .tp_dealloc = (destructor)WorkerSlot_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One worker's writer handle on its stats slot.",
    .tp_methods = WorkerSlot_methods,
    .tp_getset = WorkerSlot_getset,
};

/* ---- retiring a slot and reading the block ------------------------------------------ */

static RouteCounters *
retired_entry(StatsBlock *self, const char *key)
{
    RouteCounters *retired = block_retired(self);
    word n = self->nretired;
    for (word i = 0; i < n; i++) {
        if (retired[i].key[0] == '\0') {
            memcpy(retired[i].key, key, KEY_BYTES);
            return &retired[i];
        }
        if (memcmp(retired[i].key, key, KEY_BYTES) == 0)
            return &retired[i];
    }
    return &retired[n - 1]; /* full: the last entry absorbs the rest */
}

static PyObject *
StatsBlock_retire(StatsBlock *self, PyObject *arg)
{
    if (!block_ready(self))
        return NULL;
    unsigned long long index = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred())
        return NULL;
    if (index >= self->nslots) {
        PyErr_SetString(PyExc_IndexError, "no such stats slot");
        return NULL;
    }
    SlotHeader *slot = block_slot(self, index);
    if (!__atomic_load_n(&slot->active, __ATOMIC_ACQUIRE))
        Py_RETURN_NONE;
    BlockHeader *header = self->header;
    /* The master is the only folder: odd from whatever is there, so a sequence some other
     * writer of the file left odd is even (readable) again after the next fold. */
    word sequence = load(&header->sequence) | 1;
    __atomic_store_n(&header->sequence, sequence, __ATOMIC_RELAXED); /* odd: folding */
    __atomic_thread_fence(__ATOMIC_RELEASE); /* ...seen odd before any count moves */
    if (load(&slot->role) == ROLE_WORKER) { /* a lane's jobs are requests a worker counted */
        bump(&header->retired_requests, load(&slot->requests));
        bump(&header->retired_errors, load(&slot->errors));
        bump(&header->retired_bytes_in, load(&slot->bytes_in));
        bump(&header->retired_bytes_out, load(&slot->bytes_out));
        bump(&header->retired_ws_accepted, load(&slot->ws_accepted));
        bump(&header->retired_ws_messages_in, load(&slot->ws_messages_in));
        bump(&header->retired_ws_messages_out, load(&slot->ws_messages_out));
    }
    RouteCounters *routes = slot_routes(slot);
    word nroutes = load(&slot->nroutes);
    if (nroutes > self->nroutes)
        nroutes = self->nroutes;
    for (word r = 0; r < nroutes; r++) {
        RouteCounters *into = retired_entry(self, routes[r].key);
        store(&into->kind, routes[r].kind);
        bump(&into->requests, load(&routes[r].requests));
        bump(&into->errors, load(&routes[r].errors));
        bump(&into->blocked, load(&routes[r].blocked));
        bump(&into->duration_us, load(&routes[r].duration_us));
        for (int b = 0; b < BUCKETS; b++)
            bump(&into->histogram[b], load(&routes[r].histogram[b]));
        /* The master alone writes retired entries, and a gone worker's threads no longer
         * write its slot: plain bumps are exact here. */
        bump(&into->cpu_calls, load(&routes[r].cpu_calls));
        bump(&into->cpu_us, load(&routes[r].cpu_us));
        bump(&into->wall_us, load(&routes[r].wall_us));
        for (int b = 0; b < BUCKETS; b++)
            bump(&into->cpu_histogram[b], load(&routes[r].cpu_histogram[b]));
    }
    __atomic_store_n(&slot->active, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&header->sequence, sequence + 1, __ATOMIC_RELEASE); /* even: consistent */
    Py_RETURN_NONE;
}

static PyObject *
histogram_tuple(word *buckets)
{
    PyObject *histogram = PyTuple_New(BUCKETS);
    if (histogram == NULL)
        return NULL;
    for (int b = 0; b < BUCKETS; b++) {
        PyObject *count = PyLong_FromUnsignedLongLong(load(&buckets[b]));
        if (count == NULL) {
            Py_DECREF(histogram);
            return NULL;
        }
        PyTuple_SET_ITEM(histogram, b, count);
    }
    return histogram;
}

static PyObject *
route_tuple(RouteCounters *route, int live)
{
    char key[KEY_BYTES];
    memcpy(key, route->key, KEY_BYTES); /* written once, before the slot went active */
    key[KEY_BYTES - 1] = '\0';
    PyObject *histogram = histogram_tuple(route->histogram);
    if (histogram == NULL)
        return NULL;
    PyObject *cpu_histogram = histogram_tuple(route->cpu_histogram);
    if (cpu_histogram == NULL) {
        Py_DECREF(histogram);
        return NULL;
    }
    PyObject *name = PyUnicode_DecodeUTF8(key, (Py_ssize_t)strnlen(key, KEY_BYTES), "replace");
    if (name == NULL) {
        Py_DECREF(histogram);
        Py_DECREF(cpu_histogram);
        return NULL;
    }
    return Py_BuildValue("(NKKKKKKNKKKN)", name,
                         (unsigned long long)load(&route->kind),
                         (unsigned long long)load(&route->requests),
                         (unsigned long long)load(&route->errors),
                         (unsigned long long)(live ? load(&route->in_flight) : 0),
                         (unsigned long long)load(&route->blocked),
                         (unsigned long long)load(&route->duration_us), histogram,
                         (unsigned long long)load(&route->cpu_calls),
                         (unsigned long long)load(&route->cpu_us),
                         (unsigned long long)load(&route->wall_us), cpu_histogram);
}

static PyObject *
slot_dict(SlotHeader *slot, word index, word capacity)
{
    word nroutes = load(&slot->nroutes);
    if (nroutes > capacity)
        nroutes = capacity;
    RouteCounters *routes = slot_routes(slot);
    PyObject *route_list = PyList_New((Py_ssize_t)nroutes);
    if (route_list == NULL)
        return NULL;
    for (word r = 0; r < nroutes; r++) {
        PyObject *item = route_tuple(&routes[r], 1);
        if (item == NULL) {
            Py_DECREF(route_list);
            return NULL;
        }
        PyList_SET_ITEM(route_list, (Py_ssize_t)r, item);
    }
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsN}",
        "slot", (unsigned long long)index, "pid", (unsigned long long)load(&slot->pid),
        "role", (unsigned long long)load(&slot->role),
        "generation", (unsigned long long)load(&slot->generation),
        "requests", (unsigned long long)load(&slot->requests),
        "errors", (unsigned long long)load(&slot->errors),
        "in_flight", (unsigned long long)load(&slot->in_flight),
        "bytes_in", (unsigned long long)load(&slot->bytes_in),
        "bytes_out", (unsigned long long)load(&slot->bytes_out),
        "pool_size", (unsigned long long)load(&slot->pool_size),
        "pool_busy", (unsigned long long)load(&slot->pool_busy),
        "pool_queued", (unsigned long long)load(&slot->pool_queued),
        "loop_lag_us", (unsigned long long)load(&slot->loop_lag_us),
        "loop_lag_max_us", (unsigned long long)load(&slot->loop_lag_max_us),
        "ws_open", (unsigned long long)load(&slot->ws_open),
        "ws_accepted", (unsigned long long)load(&slot->ws_accepted),
        "ws_messages_in", (unsigned long long)load(&slot->ws_messages_in),
        "ws_messages_out", (unsigned long long)load(&slot->ws_messages_out),
        "routes", route_list);
}

static PyObject *
read_snapshot(StatsBlock *self)
{
    BlockHeader *header = self->header;
    PyObject *slots = NULL, *retired = NULL, *result = NULL;
    slots = PyList_New(0);
    retired = PyList_New(0);
    if (slots == NULL || retired == NULL)
        goto cleanup;
    for (word s = 0; s < self->nslots; s++) {
        SlotHeader *slot = block_slot(self, s);
        if (!__atomic_load_n(&slot->active, __ATOMIC_ACQUIRE))
            continue;
        PyObject *entry = slot_dict(slot, s, self->nroutes);
        if (entry == NULL || PyList_Append(slots, entry) < 0) {
            Py_XDECREF(entry);
            goto cleanup;
        }
        Py_DECREF(entry);
    }
    RouteCounters *retired_routes = block_retired(self);
    for (word r = 0; r < self->nretired && retired_routes[r].key[0]; r++) {
        PyObject *item = route_tuple(&retired_routes[r], 0);
        if (item == NULL || PyList_Append(retired, item) < 0) {
            Py_XDECREF(item);
            goto cleanup;
        }
        Py_DECREF(item);
    }
    result = Py_BuildValue("{sOsOs{sKsKsKsKsKsKsK}}", "slots", slots, "retired_routes", retired,
                           "retired", "requests", (unsigned long long)load(&header->retired_requests),
                           "errors", (unsigned long long)load(&header->retired_errors),
                           "bytes_in", (unsigned long long)load(&header->retired_bytes_in),
                           "bytes_out", (unsigned long long)load(&header->retired_bytes_out),
                           "ws_accepted", (unsigned long long)load(&header->retired_ws_accepted),
                           "ws_messages_in", (unsigned long long)load(&header->retired_ws_messages_in),
                           "ws_messages_out", (unsigned long long)load(&header->retired_ws_messages_out));
cleanup:
    Py_XDECREF(slots);
    Py_XDECREF(retired);
    return result;
}

/* A fold takes tens of microseconds (hundreds with many routes); a reader that finds one
 * running spins briefly, then sleeps between looks, until its patience (seconds) runs out.
 * By default about a second: only a master that died in the middle of a fold, or another
 * writer of the file, keeps the sequence odd longer. A worker's event loop passes far less
 * (catzilla/stats.py LOOP_READ_PATIENCE): it must never stall on shared memory. */
#define READ_SPINS 64
#define READ_PAUSE_NS 50000L
#define READ_PATIENCE 1.0
/* Patience beyond this is a caller's mistake, not a wait anyone wants. */
#define MAX_READ_PATIENCE 60.0

static void
read_backoff(int attempt)
{
    if (attempt < READ_SPINS)
        return;
    struct timespec pause = {0, READ_PAUSE_NS};
    Py_BEGIN_ALLOW_THREADS
    nanosleep(&pause, NULL);
    Py_END_ALLOW_THREADS
}

/* The deadline of a read, from its optional patience argument: 0, or -1 with an exception. */
static int
read_deadline(PyObject *args, PyObject *kwargs, const char *format, double *deadline)
{
    static char *kwlist[] = {"patience", NULL};
    double patience = READ_PATIENCE;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, format, kwlist, &patience))
        return -1;
    if (!(patience >= 0.0 && patience <= MAX_READ_PATIENCE)) { /* NaN fails too */
        PyErr_Format(PyExc_ValueError, "patience must be 0..%d seconds", (int)MAX_READ_PATIENCE);
        return -1;
    }
    *deadline = monotonic_seconds() + patience;
    return 0;
}

/* Another look, unless the deadline passed: the first look is always taken. */
static int
read_again(int attempt, double deadline)
{
    if (attempt == 0)
        return 1;
    if (monotonic_seconds() > deadline)
        return 0;
    read_backoff(attempt);
    return 1;
}

/* Read in place; if a fold ran meanwhile (the sequence moved), read again. */
static PyObject *
StatsBlock_snapshot(StatsBlock *self, PyObject *args, PyObject *kwargs)
{
    if (!block_ready(self))
        return NULL;
    double deadline;
    if (read_deadline(args, kwargs, "|d:snapshot", &deadline) < 0)
        return NULL;
    word *sequence = &self->header->sequence;
    for (int attempt = 0; read_again(attempt, deadline); attempt++) {
        word before = __atomic_load_n(sequence, __ATOMIC_ACQUIRE);
        if (before & 1)
            continue;
        PyObject *result = read_snapshot(self);
        if (result == NULL)
            return NULL;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(sequence, __ATOMIC_ACQUIRE) == before)
            return result;
        Py_DECREF(result);
    }
    PyErr_SetString(PyExc_RuntimeError, "stats block kept changing while being read");
    return NULL;
}

/* totals() -> (requests, errors, bytes_in, bytes_out) over every worker, live and gone:
 * cheap enough to sample once a second for requests per second. */
static PyObject *
StatsBlock_totals(StatsBlock *self, PyObject *args, PyObject *kwargs)
{
    if (!block_ready(self))
        return NULL;
    double deadline;
    if (read_deadline(args, kwargs, "|d:totals", &deadline) < 0)
        return NULL;
    BlockHeader *header = self->header;
    word *sequence = &header->sequence;
    for (int attempt = 0; read_again(attempt, deadline); attempt++) {
        word before = __atomic_load_n(sequence, __ATOMIC_ACQUIRE);
        if (before & 1)
            continue;
        word requests = load(&header->retired_requests), errors = load(&header->retired_errors);
        word bytes_in = load(&header->retired_bytes_in), bytes_out = load(&header->retired_bytes_out);
        for (word s = 0; s < self->nslots; s++) {
            SlotHeader *slot = block_slot(self, s);
            if (!__atomic_load_n(&slot->active, __ATOMIC_ACQUIRE) || load(&slot->role) != ROLE_WORKER)
                continue;
            requests += load(&slot->requests);
            errors += load(&slot->errors);
            bytes_in += load(&slot->bytes_in);
            bytes_out += load(&slot->bytes_out);
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(sequence, __ATOMIC_ACQUIRE) == before)
            return Py_BuildValue("(KKKK)", (unsigned long long)requests, (unsigned long long)errors,
                                 (unsigned long long)bytes_in, (unsigned long long)bytes_out);
    }
    PyErr_SetString(PyExc_RuntimeError, "stats block kept changing while being read");
    return NULL;
}

static PyObject *
StatsBlock_get_nslots(StatsBlock *self, void *closure)
{
    if (!block_ready(self))
        return NULL;
    return PyLong_FromUnsignedLongLong(self->nslots);
}

static PyObject *
StatsBlock_get_nroutes(StatsBlock *self, void *closure)
{
    if (!block_ready(self))
        return NULL;
    return PyLong_FromUnsignedLongLong(self->nroutes);
}

static PyObject *
StatsBlock_free_slot(StatsBlock *self, PyObject *unused)
{
    if (!block_ready(self))
        return NULL;
    for (word s = 0; s < self->nslots; s++) {
        if (!__atomic_load_n(&block_slot(self, s)->active, __ATOMIC_ACQUIRE))
            return PyLong_FromUnsignedLongLong(s);
    }
    Py_RETURN_NONE;
}

static PyMethodDef StatsBlock_methods[] = {
    {"size", (PyCFunction)StatsBlock_size, METH_VARARGS | METH_CLASS,
     "size(nslots, nroutes, nretired) -> bytes the block needs."},
    {"attach", (PyCFunction)StatsBlock_attach, METH_VARARGS,
     "attach(slot, pid, generation, [(key, is_async), ...]) -> WorkerSlot."},
    {"retire", (PyCFunction)StatsBlock_retire, METH_O,
     "retire(slot): fold a gone worker's counts into the retired totals, free the slot."},
    {"snapshot", (PyCFunction)(void (*)(void))StatsBlock_snapshot, METH_VARARGS | METH_KEYWORDS,
     "snapshot(patience=1.0) -> every active slot and the retired totals, read consistently;\n"
     "RuntimeError if a fold seemed to run for longer than `patience` seconds."},
    {"totals", (PyCFunction)(void (*)(void))StatsBlock_totals, METH_VARARGS | METH_KEYWORDS,
     "totals(patience=1.0) -> (requests, errors, bytes_in, bytes_out) summed over every worker;\n"
     "RuntimeError as snapshot()."},
    {"free_slot", (PyCFunction)StatsBlock_free_slot, METH_NOARGS,
     "free_slot() -> index of an inactive slot, or None."},
    {NULL},
};

static PyGetSetDef StatsBlock_getset[] = {
    {"nslots", (getter)StatsBlock_get_nslots, NULL, "worker slots", NULL},
    {"nroutes", (getter)StatsBlock_get_nroutes, NULL, "routes per slot", NULL},
    {NULL},
};

static PyTypeObject StatsBlock_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.StatsBlock",
    .tp_basicsize = sizeof(StatsBlock),
    .tp_dealloc = (destructor)StatsBlock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "StatsBlock(buffer, nslots=0, nroutes=0, nretired=0, create=False)",
    .tp_methods = StatsBlock_methods,
    .tp_getset = StatsBlock_getset,
    .tp_init = (initproc)StatsBlock_init,
    .tp_new = PyType_GenericNew,
};

/* CpuMeter(endpoint, slot, route_index): `endpoint` as the pool calls it, with the calling
 * thread's CPU clock and the wall clock read around each call (catzilla/worker/cpu_time.py).
 * In C so that measuring every call of a def handler costs two clock reads and four atomic
 * adds, not a Python frame, a lock and a dict update. Each sum goes to the route's row in
 * the stats block (when `slot` is a WorkerSlot) and to the meter's own tally, which the
 * worker's tick reads as (calls, cpu seconds, wall seconds). */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *endpoint;
    PyObject *slot; /* a WorkerSlot, or None (--no-stats) */
    Py_ssize_t route;
    word calls, cpu_us, wall_us; /* atomics */
} CpuMeter;

static word
clock_us(clockid_t clock)
{
    struct timespec now;
    if (clock_gettime(clock, &now) != 0)
        return 0;
    return (word)now.tv_sec * 1000000u + (word)now.tv_nsec / 1000u;
}

static PyObject *
CpuMeter_vectorcall(CpuMeter *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    word cpu = clock_us(CLOCK_THREAD_CPUTIME_ID), wall = clock_us(CLOCK_MONOTONIC);
    PyObject *result = PyObject_Vectorcall(self->endpoint, args, nargsf, kwnames);
    word cpu_end = clock_us(CLOCK_THREAD_CPUTIME_ID), wall_end = clock_us(CLOCK_MONOTONIC);
    word cpu_us = cpu_end > cpu ? cpu_end - cpu : 0, wall_us = wall_end > wall ? wall_end - wall : 0;
    add(&self->calls, 1);
    add(&self->cpu_us, cpu_us);
    add(&self->wall_us, wall_us);
    if (Py_TYPE(self->slot) == &WorkerSlot_Type)
        slot_add_cpu((WorkerSlot *)self->slot, self->route, cpu_us, wall_us);
    return result;
}

static PyObject *
CpuMeter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *endpoint, *slot;
    Py_ssize_t route;
    if (!PyArg_ParseTuple(args, "OOn:CpuMeter", &endpoint, &slot, &route))
        return NULL;
    if (!PyCallable_Check(endpoint)) {
        PyErr_SetString(PyExc_TypeError, "CpuMeter: endpoint must be callable");
        return NULL;
    }
    CpuMeter *self = (CpuMeter *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)CpuMeter_vectorcall;
    self->endpoint = Py_NewRef(endpoint);
    self->slot = Py_NewRef(slot);
    self->route = route;
    return (PyObject *)self;
}

static int
CpuMeter_traverse(CpuMeter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->endpoint);
    Py_VISIT(self->slot);
    return 0;
}

static int
CpuMeter_clear(CpuMeter *self)
{
    Py_CLEAR(self->endpoint);
    Py_CLEAR(self->slot);
    return 0;
}

static void
CpuMeter_dealloc(CpuMeter *self)
{
    PyObject_GC_UnTrack(self);
    CpuMeter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
CpuMeter_get_tally(CpuMeter *self, void *closure)
{
    return Py_BuildValue("(Kdd)", (unsigned long long)load(&self->calls), load(&self->cpu_us) / 1e6,
                         load(&self->wall_us) / 1e6);
}

static PyObject *
CpuMeter_get_wrapped(CpuMeter *self, void *closure)
{
    return Py_NewRef(self->endpoint);
}

static PyGetSetDef CpuMeter_getset[] = {
    {"tally", (getter)CpuMeter_get_tally, NULL, "(calls, cpu seconds, wall seconds) since start", NULL},
    {"__wrapped__", (getter)CpuMeter_get_wrapped, NULL, "the endpoint measured", NULL},
    {NULL},
};

static PyTypeObject CpuMeter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.CpuMeter",
    .tp_basicsize = sizeof(CpuMeter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(CpuMeter, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = CpuMeter_new,
    .tp_traverse = (traverseproc)CpuMeter_traverse,
    .tp_clear = (inquiry)CpuMeter_clear,
    .tp_dealloc = (destructor)CpuMeter_dealloc,
    .tp_getset = CpuMeter_getset,
    .tp_doc = "CpuMeter(endpoint, slot, route_index): endpoint, with each call's CPU and wall time summed.",
};

int
catzilla_stats_init(PyObject *module)
{
    if (PyType_Ready(&StatsBlock_Type) < 0 || PyType_Ready(&WorkerSlot_Type) < 0
            || PyType_Ready(&CpuMeter_Type) < 0)
        return -1;
    Py_INCREF(&CpuMeter_Type);
    if (PyModule_AddObject(module, "CpuMeter", (PyObject *)&CpuMeter_Type) < 0) {
        Py_DECREF(&CpuMeter_Type);
        return -1;
    }
    Py_INCREF(&StatsBlock_Type);
    if (PyModule_AddObject(module, "StatsBlock", (PyObject *)&StatsBlock_Type) < 0) {
        Py_DECREF(&StatsBlock_Type);
        return -1;
    }
    Py_INCREF(&WorkerSlot_Type);
    if (PyModule_AddObject(module, "WorkerSlot", (PyObject *)&WorkerSlot_Type) < 0) {
        Py_DECREF(&WorkerSlot_Type);
        return -1;
    }
    if (PyModule_AddIntConstant(module, "STATS_BUCKETS", BUCKETS) < 0)
        return -1;
    /* Readers refuse a file shorter than this before they map it. */
    if (PyModule_AddIntConstant(module, "STATS_HEADER_BYTES", (long)sizeof(BlockHeader)) < 0)
        return -1;
    return 0;
}
