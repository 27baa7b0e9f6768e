/* The access log's lines, formatted into one buffer (catzilla/worker/access_log.py).
 *
 * A line made in Python cost two calls, a `%` of nine fields with a float format and a list
 * append: about a third of a small request's own work. Here a line is one C call that copies
 * its fields into a growing buffer of UTF-8, written by the Python side once per loop
 * iteration (take()). Only the common line is made here: fields that are plain ASCII, the
 * path printable (text) or free of what JSON escapes, an int status and size, a duration
 * below 10^12 ms. Any other line is made by the Python reference the object was given
 * (AccessLog._text_line or _json_line), and its text copied in: so every line is, byte for
 * byte, what that reference makes (tests/test_access_log_native.py compares them).
 *
 * The durations: "%.1f" and repr(round(d, 3)) round the exact binary value half to even.
 * d * 10 and d * 1000 are exact in an x87 long double (53 + 3 and 53 + 7 significant bits
 * of 64), and rintl() rounds half to even, so the digits come from one integer. Where long
 * double is narrower, every line goes to the reference.
 *
 * Writing (write()): where the lines go straight to a descriptor (AccessLog.decide chose one,
 * output()), the burst is written from here, scheduled once per loop iteration with its
 * first line: no Python frame, lock or text layer per iteration. A reader that is slow (a
 * full non-blocking pipe, EAGAIN) leaves the rest in the buffer, written when the descriptor
 * is writable again (the owner's _watch); lines beyond backlog_max bytes are dropped and
 * counted, so a stuck reader costs neither the loop nor unbounded memory.
 */
#include "native.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <structmember.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if LDBL_MANT_DIG >= 64
#define EXACT_DURATIONS 1
#else
#define EXACT_DURATIONS 0
#endif

/* A line longer than this is made by the reference (no field of the common line is long). */
#define FAST_FIELD_MAX 8192
/* A buffer grown beyond this by a burst is given back once written. */
#define KEEP_CAPACITY (1 << 20)

/* How write() reaches its descriptor (output()'s mode). */
#define OUT_WRITE 0 /* write(2): a file, a terminal */
#define OUT_PIPE 1  /* write(2) in pieces of at most PIPE_BUF that end a line: atomic, so a
                     * partial write never splits a line, nor do other workers' writes */
#define OUT_SEND 2  /* send(2) with MSG_DONTWAIT: a socket (systemd's journal stream) */

static PyObject *str_time;               /* "time" */
static PyObject *str_data;               /* "_data" */
static PyObject *str_request_id;         /* "request_id" */
static PyObject *str_client_text_method; /* "_client_text" */
/* time.time and time.perf_counter as the time module made them: while a line's clocks are
 * these (not a test's), they are read here, with what they return to Python. */
static PyObject *genuine_time, *genuine_perf_counter;

/* The seconds of a clock as time.time() (CLOCK_REALTIME) or time.perf_counter()
 * (CLOCK_MONOTONIC) return them: pytime.c's nanoseconds, then _PyTime_AsSecondsDouble. */
static double
clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (ns % 1000000000LL == 0)
        return (double)(ns / 1000000000LL);
    return (double)ns / 1e9;
}

typedef struct {
    PyObject_HEAD
    int json;               /* JSON lines (else text) */
    double start;           /* the second head is for: [start, start + 1) */
    char *head;             /* the line up to its time's milliseconds */
    Py_ssize_t head_len;
    char *middle;           /* from after the milliseconds up to the client */
    Py_ssize_t middle_len;
    PyObject *time_module;  /* its time() is looked up per line: tests replace it */
    PyObject *perf_counter; /* time.perf_counter: the clock Exchange.started is read on */
    PyObject *new_second;   /* new_second(now) -> fraction: calls second() */
    PyObject *reference;    /* reference(fraction, client, method, path, version, status, size,
                             * duration_ms, request_id) -> the line, without its end */
    PyObject *schedule;     /* loop.call_soon */
    PyObject *flush;        /* what schedule is given when a burst's first line comes */
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
    /* where write() sends buf[sent:len] (output()); fd -1: the Python side takes the lines */
    int fd;
    int mode;               /* OUT_WRITE, OUT_PIPE, OUT_SEND */
    int surrogates;         /* a line since the last write() is not UTF-8 (a lone surrogate) */
    int slow;               /* the reader left bytes behind (EAGAIN): a backlog is held */
    int watching;           /* the owner watches fd for write() */
    Py_ssize_t sent;        /* bytes of buf already written */
    Py_ssize_t backlog_max; /* bytes held for a slow reader; beyond, lines are dropped */
    Py_ssize_t dropped;     /* lines dropped since the last report */
    PyObject *owner;        /* the AccessLog: _watch(on), _write_text(), _dropped(n), _failed(errno) */
    PyObject *python_flush; /* the flush given at construction (fd -1) */
    PyObject *write_method; /* self.write, scheduled instead while fd >= 0 */
} AccessLines;

/* ---- the buffer ------------------------------------------------------------------------ */

static int
reserve(AccessLines *self, Py_ssize_t more)
{
    if (more > PY_SSIZE_T_MAX - self->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t need = self->len + more;
    if (need <= self->cap)
        return 0;
    Py_ssize_t cap = self->cap ? self->cap : 4096;
    while (cap < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *buf = PyMem_Realloc(self->buf, (size_t)cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    return 0;
}

/* The buffer empty, given back if a burst grew it large. */
static void
emptied(AccessLines *self)
{
    self->len = self->sent = 0;
    if (self->cap > KEEP_CAPACITY) {
        PyMem_Free(self->buf);
        self->buf = NULL;
        self->cap = 0;
    }
}

/* ---- reading the fields of an Exchange ----------------------------------------------------
 *
 * An Exchange, a Request and an HttpProtocol keep these fields as slots (T_OBJECT_EX members).
 * PyObject_GetAttr finds one through the type's attribute cache and the member descriptor,
 * about 150 instructions; the interpreter's specialised LOAD_ATTR reads it at its offset.
 * A Slot does what the interpreter does: the offset the attribute's member descriptor names,
 * remembered for one type and valid while that type is unchanged (its version tag); any
 * other object, type or attribute is read by PyObject_GetAttr. */

typedef struct {
    PyObject *name;
    PyTypeObject *type;    /* borrowed: the cache is checked against Py_TYPE(object) */
    unsigned int version;  /* type->tp_version_tag when the offset was read */
    Py_ssize_t offset;     /* 0: read by PyObject_GetAttr */
} Slot;

enum {
    EXCHANGE_REQUEST, EXCHANGE_CONNECTION, EXCHANGE_STARTED,
    REQUEST_CLIENT, REQUEST_METHOD, REQUEST_PATH, REQUEST_VERSION, REQUEST_STATE,
    CONNECTION_CLIENT, CONNECTION_CLIENT_TEXT,
    NSLOTS
};

static Slot slots[NSLOTS];

#if PY_VERSION_HEX >= 0x030C0000
#define OBJECT_EX Py_T_OBJECT_EX
#else
#define OBJECT_EX T_OBJECT_EX
#endif

/* The offset of `name` in instances of `type`, if its attribute is a T_OBJECT_EX member
 * that plain attribute lookup reaches; else 0. */
static Py_ssize_t
member_offset(PyTypeObject *type, PyObject *name)
{
    if (type->tp_getattro != PyObject_GenericGetAttr)
        return 0;
    PyObject *descr = PyObject_GetAttr((PyObject *)type, name);
    if (descr == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t offset = 0;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type) && PyType_IsSubtype(type, PyDescr_TYPE(descr))) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == OBJECT_EX && member->offset > 0)
            offset = member->offset;
    }
    Py_DECREF(descr);
    return offset;
}

/* object.<slot's name>: a new reference, or NULL with an exception. */
static PyObject *
read_slot(PyObject *object, int which)
{
    Slot *slot = &slots[which];
    PyTypeObject *type = Py_TYPE(object);
    if (type != slot->type || type->tp_version_tag != slot->version || slot->version == 0) {
        Py_ssize_t offset = member_offset(type, slot->name);
        slot->type = type;
        slot->version = (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) ? type->tp_version_tag : 0;
        slot->offset = offset;
    }
    if (slot->offset > 0) {
        PyObject *value = *(PyObject **)((char *)object + slot->offset);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(object, slot->name); /* (an unset slot raises its AttributeError) */
}

/* ---- fields ---------------------------------------------------------------------------- */

typedef struct {
    const char *data;
    Py_ssize_t len;
} Piece;

#define CLEAN_ANY 0       /* any ASCII: copied as the reference copies it */
#define CLEAN_PRINTABLE 1 /* str.isprintable() holds: the text path is not escaped */
#define CLEAN_JSON 2      /* printable, and nothing JSON escapes */

/* An exact str of ASCII that the reference would copy unchanged: its bytes; else 0. */
static int
ascii_field(PyObject *value, int clean, Piece *piece)
{
    if (!PyUnicode_CheckExact(value))
        return 0;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(value) < 0) {
        PyErr_Clear();
        return 0;
    }
#endif
    if (!PyUnicode_IS_ASCII(value))
        return 0;
    Py_ssize_t len = PyUnicode_GET_LENGTH(value);
    if (len > FAST_FIELD_MAX)
        return 0;
    const unsigned char *data = PyUnicode_1BYTE_DATA(value);
    if (clean != CLEAN_ANY) {
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = data[i];
            if (c < 0x20 || c > 0x7e)
                return 0;
            if (clean == CLEAN_JSON && (c == '"' || c == '\\'))
                return 0;
        }
    }
    piece->data = (const char *)data;
    piece->len = len;
    return 1;
}

/* The decimal digits of v, at the end of out[0:24): where they start. */
static char *
digits(char *end, unsigned long long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* An exact int >= 0 as "%d" writes it, into out[24]; else 0. */
static int
int_field(PyObject *value, char *out, Piece *piece)
{
    if (!PyLong_CheckExact(value))
        return 0;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || v < 0) {
        if (v == -1 && PyErr_Occurred())
            PyErr_Clear();
        return 0;
    }
    char *start = digits(out + 24, (unsigned long long)v);
    piece->data = start;
    piece->len = out + 24 - start;
    return 1;
}

/* "%.1f" % duration and repr(round(duration, 3)), into tenths[24] and thousandths[32];
 * 0 for a duration the reference formats (negative, -0.0, not finite, 10^12 or more). */
static int
duration_fields(double duration, char *tenths, Piece *one, char *thousandths, Piece *three)
{
#if EXACT_DURATIONS
    if (!(duration >= 0.0 && duration < 1e12) || signbit(duration))
        return 0;
    unsigned long long n1 = (unsigned long long)rintl((long double)duration * 10.0L);
    char *end = tenths + 24;
    *--end = (char)('0' + n1 % 10);
    *--end = '.';
    char *start = digits(end, n1 / 10);
    one->data = start;
    one->len = tenths + 24 - start;

    unsigned long long n3 = (unsigned long long)rintl((long double)duration * 1000.0L);
    /* repr: the thousandths without their trailing zeros, one digit kept */
    unsigned fraction = (unsigned)(n3 % 1000);
    char *fend = thousandths + 32;
    char frac[3] = {(char)('0' + fraction / 100), (char)('0' + fraction / 10 % 10), (char)('0' + fraction % 10)};
    int keep = frac[2] != '0' ? 3 : frac[1] != '0' ? 2 : 1;
    fend -= keep;
    memcpy(fend, frac, (size_t)keep);
    *--fend = '.';
    start = digits(fend, n3 / 1000);
    three->data = start;
    three->len = thousandths + 32 - start;
    return 1;
#else
    return 0;
#endif
}

/* ---- a line ----------------------------------------------------------------------------- */

#define LIT(s) ((Piece){s, (Py_ssize_t)sizeof(s) - 1})

/* The line of these fields, made here; 0 when the reference must make it, -1 on error. */
static int
fast_line(AccessLines *self, int millis, PyObject *client, PyObject *method, PyObject *path,
          PyObject *version, PyObject *status, PyObject *size, double duration, PyObject *request_id)
{
    Piece pieces[32];
    int n = 0;
    char ms_buf[24], status_buf[24], size_buf[24], tenths_buf[24], thousandths_buf[32];
    Piece ms, client_p, method_p, path_p, version_p, status_p, size_p, one, three, rid_p;
    int json = self->json;

    if (millis < 0 || !ascii_field(client, CLEAN_ANY, &client_p) || !ascii_field(method, CLEAN_ANY, &method_p)
            || !ascii_field(path, json ? CLEAN_JSON : CLEAN_PRINTABLE, &path_p)
            || !ascii_field(version, CLEAN_ANY, &version_p) || !int_field(status, status_buf, &status_p))
        return 0;
    if (size == Py_None)
        size_p = LIT("-");
    else if (!int_field(size, size_buf, &size_p))
        return 0;
    if (!duration_fields(duration, tenths_buf, &one, thousandths_buf, &three))
        return 0;
    if (request_id != Py_None && (json || !ascii_field(request_id, CLEAN_PRINTABLE, &rid_p)))
        return 0; /* (a JSON line with an id is orjson's) */

    /* "%03d" */
    char *start = digits(ms_buf + 24, (unsigned long long)millis);
    while (ms_buf + 24 - start < 3)
        *--start = '0';
    ms = (Piece){start, ms_buf + 24 - start};

    pieces[n++] = (Piece){self->head, self->head_len};
    pieces[n++] = ms;
    pieces[n++] = (Piece){self->middle, self->middle_len};
    pieces[n++] = client_p;
    pieces[n++] = json ? LIT(" - \\\"") : LIT(" - \"");
    pieces[n++] = method_p;
    pieces[n++] = LIT(" ");
    pieces[n++] = path_p;
    pieces[n++] = LIT(" HTTP/");
    pieces[n++] = version_p;
    pieces[n++] = json ? LIT("\\\" ") : LIT("\" ");
    pieces[n++] = status_p;
    pieces[n++] = LIT(" ");
    pieces[n++] = size_p;
    pieces[n++] = LIT(" ");
    pieces[n++] = one;
    pieces[n++] = LIT("ms");
    if (json) {
        pieces[n++] = LIT("\",\"client\":\"");
        pieces[n++] = client_p;
        pieces[n++] = LIT("\",\"method\":\"");
        pieces[n++] = method_p;
        pieces[n++] = LIT("\",\"path\":\"");
        pieces[n++] = path_p;
        pieces[n++] = LIT("\",\"status\":");
        pieces[n++] = status_p;
        pieces[n++] = LIT(",\"duration_ms\":");
        pieces[n++] = three;
        pieces[n++] = LIT("}");
    }
    else if (request_id != Py_None) {
        pieces[n++] = LIT(" request_id=");
        pieces[n++] = rid_p;
    }
    pieces[n++] = LIT("\n");

    Py_ssize_t total = 0;
    for (int i = 0; i < n; i++)
        total += pieces[i].len; /* each at most FAST_FIELD_MAX or a head: no overflow */
    if (reserve(self, total) < 0)
        return -1;
    char *out = self->buf + self->len;
    for (int i = 0; i < n; i++) {
        memcpy(out, pieces[i].data, (size_t)pieces[i].len);
        out += pieces[i].len;
    }
    self->len += total;
    return 1;
}

/* The line the reference makes of these fields, copied in with its end. */
static int
reference_line(AccessLines *self, double fraction, PyObject *client, PyObject *method, PyObject *path,
               PyObject *version, PyObject *status, PyObject *size, PyObject *duration, PyObject *request_id)
{
    int result = -1;
    PyObject *fraction_o = NULL, *line = NULL, *encoded = NULL;
    fraction_o = PyFloat_FromDouble(fraction);
    if (fraction_o == NULL)
        goto cleanup;
    PyObject *args[9] = {fraction_o, client, method, path, version, status, size, duration, request_id};
    line = PyObject_Vectorcall(self->reference, args, 9, NULL);
    if (line == NULL)
        goto cleanup;
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "the access log's reference returned no str");
        goto cleanup;
    }
    /* surrogatepass both ways (take() decodes so): any str comes back as it was; a line
     * that is not UTF-8 is written by the Python side (write()) */
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(line, &len);
    if (utf8 == NULL) {
        PyErr_Clear();
        self->surrogates = 1;
        encoded = PyUnicode_AsEncodedString(line, "utf-8", "surrogatepass");
        if (encoded == NULL)
            goto cleanup;
        utf8 = PyBytes_AS_STRING(encoded);
        len = PyBytes_GET_SIZE(encoded);
    }
    if (len == PY_SSIZE_T_MAX || reserve(self, len + 1) < 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto cleanup;
    }
    memcpy(self->buf + self->len, utf8, (size_t)len);
    self->buf[self->len + len] = '\n';
    self->len += len + 1;
    result = 0;
cleanup:
    Py_XDECREF(fraction_o);
    Py_XDECREF(line);
    Py_XDECREF(encoded);
    return result;
}

/* The part of the second `now` is, making the format of a new second first; the burst's
 * write scheduled with its first line. Python callbacks run here, before the buffer is
 * touched. -1.0 on error. */
static double
begin_line(AccessLines *self)
{
    double fraction = -1.0;
    PyObject *clock = NULL, *now = NULL, *made = NULL, *scheduled = NULL;
    double t;
    if (PyModule_CheckExact(self->time_module)
            && PyDict_GetItemWithError(PyModule_GetDict(self->time_module), str_time) == genuine_time) {
        t = clock_seconds(CLOCK_REALTIME);
    }
    else {
        if (PyErr_Occurred())
            goto cleanup;
        clock = PyObject_GetAttr(self->time_module, str_time);
        if (clock == NULL)
            goto cleanup;
        now = PyObject_CallNoArgs(clock);
        if (now == NULL)
            goto cleanup;
        t = PyFloat_AsDouble(now);
        if (t == -1.0 && PyErr_Occurred())
            goto cleanup;
    }
    double part = t - self->start;
    if (!(part >= 0.0 && part < 1.0)) { /* a new second (or the clock was set back) */
        if (now == NULL && (now = PyFloat_FromDouble(t)) == NULL)
            goto cleanup;
        made = PyObject_CallOneArg(self->new_second, now);
        if (made == NULL)
            goto cleanup;
        part = PyFloat_AsDouble(made);
        if (part == -1.0 && PyErr_Occurred())
            goto cleanup;
    }
    if (self->len == 0) {
        scheduled = PyObject_CallOneArg(self->schedule, self->flush);
        if (scheduled == NULL)
            goto cleanup;
    }
    fraction = part;
cleanup:
    Py_XDECREF(clock);
    Py_XDECREF(now);
    Py_XDECREF(made);
    Py_XDECREF(scheduled);
    return fraction;
}

static int
add_line(AccessLines *self, PyObject *client, PyObject *method, PyObject *path, PyObject *version,
         PyObject *status, PyObject *size, double duration, PyObject *duration_o, PyObject *request_id)
{
    if (self->slow && self->len - self->sent > self->backlog_max) { /* a stuck reader: counted, not kept */
        self->dropped++;
        return 0;
    }
    double fraction = begin_line(self);
    if (fraction == -1.0 && PyErr_Occurred())
        return -1;
    /* logging's msecs as %03d writes them: the float's milliseconds, truncated */
    double ms = fraction * 1000.0;
    int millis = ms >= 0.0 && ms < 1e6 ? (int)ms : -1;
    int made = duration_o == NULL || PyFloat_CheckExact(duration_o)
        ? fast_line(self, millis, client, method, path, version, status, size, duration, request_id) : 0;
    if (made != 0)
        return made < 0 ? -1 : 0;
    int result = -1;
    PyObject *owned = NULL;
    if (duration_o == NULL) {
        duration_o = owned = PyFloat_FromDouble(duration);
        if (owned == NULL)
            return -1;
    }
    result = reference_line(self, fraction, client, method, path, version, status, size, duration_o, request_id);
    Py_XDECREF(owned);
    return result;
}

/* log(client, method, path, version, status, size, duration_ms, request_id=None) */
static PyObject *
lines_log(AccessLines *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 && nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "log(client, method, path, version, status, size, duration_ms, request_id=None)");
        return NULL;
    }
    double duration = PyFloat_AsDouble(args[6]);
    if (duration == -1.0 && PyErr_Occurred())
        return NULL;
    if (add_line(self, args[0], args[1], args[2], args[3], args[4], args[5], duration, args[6],
                 nargs == 8 ? args[7] : Py_None) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* exchange(exchange, status, size): the line of a finished Exchange, its fields read as
 * HttpProtocol._log_access reads them. */
static PyObject *
lines_exchange(AccessLines *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result = NULL;
    PyObject *request = NULL, *connection = NULL, *started = NULL, *client = NULL, *peer = NULL,
             *client_text = NULL, *method = NULL, *path = NULL, *version = NULL, *state = NULL,
             *data = NULL, *request_id = NULL, *now = NULL;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "exchange(exchange, status, size)");
        return NULL;
    }
    PyObject *exchange = args[0];
    if ((request = read_slot(exchange, EXCHANGE_REQUEST)) == NULL
            || (connection = read_slot(exchange, EXCHANGE_CONNECTION)) == NULL
            || (started = read_slot(exchange, EXCHANGE_STARTED)) == NULL
            || (client = read_slot(request, REQUEST_CLIENT)) == NULL)
        goto cleanup;
    /* the peer, or the client a trusted proxy named (HttpProtocol._client_text) */
    if (client != Py_None) {
        if ((peer = read_slot(connection, CONNECTION_CLIENT)) == NULL)
            goto cleanup;
    }
    if (client == Py_None || client == peer)
        client_text = read_slot(connection, CONNECTION_CLIENT_TEXT);
    else
        client_text = PyObject_CallMethodOneArg(connection, str_client_text_method, request);
    if (client_text == NULL)
        goto cleanup;
    if ((method = read_slot(request, REQUEST_METHOD)) == NULL
            || (path = read_slot(request, REQUEST_PATH)) == NULL
            || (version = read_slot(request, REQUEST_VERSION)) == NULL
            || (state = read_slot(request, REQUEST_STATE)) == NULL)
        goto cleanup;
    if (state != Py_None) { /* RequestIDMiddleware's request.state.request_id */
        if ((data = PyObject_GetAttr(state, str_data)) == NULL)
            goto cleanup;
        if (PyDict_CheckExact(data)) {
            request_id = PyDict_GetItemWithError(data, str_request_id);
            if (request_id == NULL && PyErr_Occurred())
                goto cleanup;
            Py_XINCREF(request_id);
        }
        else if ((request_id = PyObject_CallMethod(data, "get", "O", str_request_id)) == NULL)
            goto cleanup;
    }
    double t;
    if (self->perf_counter == genuine_perf_counter)
        t = clock_seconds(CLOCK_MONOTONIC);
    else {
        if ((now = PyObject_CallNoArgs(self->perf_counter)) == NULL)
            goto cleanup;
        t = PyFloat_AsDouble(now);
    }
    double begun = PyFloat_AsDouble(started);
    if (PyErr_Occurred())
        goto cleanup;
    if (add_line(self, client_text, method, path, version, args[1], args[2], (t - begun) * 1000.0, NULL,
                 request_id == NULL ? Py_None : request_id) < 0)
        goto cleanup;
    result = Py_NewRef(Py_None);
cleanup:
    Py_XDECREF(request);
    Py_XDECREF(connection);
    Py_XDECREF(started);
    Py_XDECREF(client);
    Py_XDECREF(peer);
    Py_XDECREF(client_text);
    Py_XDECREF(method);
    Py_XDECREF(path);
    Py_XDECREF(version);
    Py_XDECREF(state);
    Py_XDECREF(data);
    Py_XDECREF(request_id);
    Py_XDECREF(now);
    return result;
}

static int
copy_text(PyObject *text, char **to, Py_ssize_t *to_len)
{
    Py_ssize_t len;
    const char *data = PyUnicode_AsUTF8AndSize(text, &len);
    if (data == NULL)
        return -1;
    char *copy = PyMem_Malloc(len ? (size_t)len : 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(copy, data, (size_t)len);
    PyMem_Free(*to);
    *to = copy;
    *to_len = len;
    return 0;
}

/* second(start, head, middle): the second the next lines are in, and the text around
 * their milliseconds. */
static PyObject *
lines_second(AccessLines *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyUnicode_Check(args[1]) || !PyUnicode_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "second(start: float, head: str, middle: str)");
        return NULL;
    }
    double start = PyFloat_AsDouble(args[0]);
    if (start == -1.0 && PyErr_Occurred())
        return NULL;
    if (copy_text(args[1], &self->head, &self->head_len) < 0 || copy_text(args[2], &self->middle, &self->middle_len) < 0)
        return NULL;
    self->start = start;
    Py_RETURN_NONE;
}

/* reset(json, reference): the format chosen anew; the next line makes its second's. */
static PyObject *
lines_reset(AccessLines *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "reset(json, reference)");
        return NULL;
    }
    int json = PyObject_IsTrue(args[0]);
    if (json < 0)
        return NULL;
    self->json = json;
    Py_XSETREF(self->reference, Py_NewRef(args[1]));
    self->start = 0.0;
    Py_RETURN_NONE;
}

/* take() -> the lines gathered (each with its end) and not yet written, or None; the buffer
 * is emptied. */
static PyObject *
lines_take(AccessLines *self, PyObject *Py_UNUSED(ignored))
{
    if (self->len == 0)
        Py_RETURN_NONE;
    PyObject *text = PyUnicode_DecodeUTF8(self->buf + self->sent, self->len - self->sent, "surrogatepass");
    emptied(self);
    self->surrogates = 0;
    return text;
}

/* ---- writing to a descriptor ------------------------------------------------------------ */

/* owner.<name>(*args): its result dropped; -1 with its exception. */
static int
call_owner(AccessLines *self, const char *name, PyObject *arg)
{
    PyObject *result = arg == NULL ? PyObject_CallMethod(self->owner, name, NULL)
                                   : PyObject_CallMethod(self->owner, name, "O", arg);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* The lines in buf[from:to]. */
static Py_ssize_t
count_lines(const char *buf, Py_ssize_t from, Py_ssize_t to)
{
    Py_ssize_t n = 0;
    for (const char *p = buf + from, *end = buf + to; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        n++;
    return n;
}

/* write() -> the bytes still waiting for a slow reader: the lines gathered, written to the
 * descriptor output() named as far as it takes them without waiting (a blocking file or
 * terminal takes them all). Scheduled by the first line of a burst; the owner's _watch calls
 * it again when a slow reader has made room. */
static PyObject *
lines_write(AccessLines *self, PyObject *Py_UNUSED(ignored))
{
    if (self->fd < 0 || self->len == 0)
        return PyLong_FromLong(0);
    if (self->surrogates) {
        self->surrogates = 0;
        if (self->sent == 0) { /* lines the stream's encoder must write (take() + the handler) */
            if (call_owner(self, "_write_text", NULL) < 0)
                return NULL;
            return PyLong_FromSsize_t(self->len - self->sent);
        }
    }
    while (self->sent < self->len) {
        const char *p = self->buf + self->sent;
        size_t n = (size_t)(self->len - self->sent);
        if (self->mode == OUT_PIPE && n > PIPE_BUF) {
            const char *end = memrchr(p, '\n', PIPE_BUF);
            n = end != NULL ? (size_t)(end - p) + 1 : PIPE_BUF; /* (a line longer than PIPE_BUF: in pieces) */
        }
        ssize_t written = self->mode == OUT_SEND ? send(self->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
                                                 : write(self->fd, p, n);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            /* a reader gone (EPIPE), a full disk: these lines cannot be written; said once */
            PyObject *error = PyLong_FromLong(errno);
            if (error == NULL)
                return NULL;
            emptied(self);
            int failed = call_owner(self, "_failed", error);
            Py_DECREF(error);
            return failed < 0 ? NULL : PyLong_FromLong(0);
        }
        self->sent += written;
    }
    if (self->sent == self->len) {
        emptied(self);
        self->slow = 0;
        if (self->watching) {
            self->watching = 0;
            if (call_owner(self, "_watch", Py_False) < 0)
                return NULL;
        }
        if (self->dropped) { /* the reader caught up: how many lines it missed */
            PyObject *n = PyLong_FromSsize_t(self->dropped);
            if (n == NULL)
                return NULL;
            self->dropped = 0;
            int reported = call_owner(self, "_dropped", n);
            Py_DECREF(n);
            if (reported < 0)
                return NULL;
        }
        return PyLong_FromLong(0);
    }
    /* a slow reader: the rest kept (at the front), written when fd is writable again */
    memmove(self->buf, self->buf + self->sent, (size_t)(self->len - self->sent));
    self->len -= self->sent;
    self->sent = 0;
    self->slow = 1;
    if (!self->watching) {
        PyObject *watched = PyObject_CallMethod(self->owner, "_watch", "O", Py_True);
        if (watched == NULL)
            return NULL;
        self->watching = PyObject_IsTrue(watched) > 0; /* false: a one-off timer, asked again */
        Py_DECREF(watched);
    }
    return PyLong_FromSsize_t(self->len);
}

/* output(fd, mode, backlog_max, owner): write() sends the lines to fd (-1: the Python side
 * takes them, as it did before output() was called). */
static PyObject *
lines_output(AccessLines *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "output(fd, mode, backlog_max, owner)");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    long mode = PyLong_AsLong(args[1]);
    Py_ssize_t backlog_max = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (fd > INT_MAX || mode < OUT_WRITE || mode > OUT_SEND || backlog_max < 0) {
        PyErr_SetString(PyExc_ValueError, "output(): an fd, mode 0..2, backlog_max >= 0");
        return NULL;
    }
    if (self->len != 0) {
        PyErr_SetString(PyExc_RuntimeError, "output(): lines are still waiting to be written");
        return NULL;
    }
    if (fd >= 0 && self->write_method == NULL) {
        self->write_method = PyObject_GetAttrString((PyObject *)self, "write");
        if (self->write_method == NULL)
            return NULL;
    }
    self->fd = fd < 0 ? -1 : (int)fd;
    self->mode = (int)mode;
    self->backlog_max = fd < 0 ? PY_SSIZE_T_MAX : backlog_max;
    self->slow = self->watching = self->surrogates = 0;
    self->dropped = 0;
    Py_XSETREF(self->owner, Py_NewRef(args[3]));
    Py_XSETREF(self->flush, Py_NewRef(fd < 0 ? self->python_flush : self->write_method));
    Py_RETURN_NONE;
}

/* discard() -> the lines given up on (a reader that never caught up), dropped ones included. */
static PyObject *
lines_discard(AccessLines *self, PyObject *Py_UNUSED(ignored))
{
    /* a partly written line counts as lost: the reader has only its start */
    Py_ssize_t lost = count_lines(self->buf, self->sent, self->len) + self->dropped;
    emptied(self);
    self->dropped = 0;
    self->slow = 0;
    return PyLong_FromSsize_t(lost);
}

static PyObject *
lines_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"time_module", "new_second", "schedule", "flush", NULL};
    PyObject *time_module, *new_second, *schedule, *flush;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO:AccessLines", names, &time_module, &new_second,
                                     &schedule, &flush))
        return NULL;
    PyObject *perf_counter = PyObject_GetAttrString(time_module, "perf_counter");
    if (perf_counter == NULL)
        return NULL;
    AccessLines *self = (AccessLines *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(perf_counter);
        return NULL;
    }
    self->time_module = Py_NewRef(time_module);
    self->perf_counter = perf_counter;
    self->new_second = Py_NewRef(new_second);
    self->reference = Py_NewRef(Py_None);
    self->schedule = Py_NewRef(schedule);
    self->flush = Py_NewRef(flush);
    self->python_flush = Py_NewRef(flush);
    self->owner = Py_NewRef(Py_None);
    self->fd = -1;
    self->backlog_max = PY_SSIZE_T_MAX;
    return (PyObject *)self;
}

static int
lines_traverse(AccessLines *self, visitproc visit, void *arg)
{
    Py_VISIT(self->time_module);
    Py_VISIT(self->perf_counter);
    Py_VISIT(self->new_second);
    Py_VISIT(self->reference);
    Py_VISIT(self->schedule);
    Py_VISIT(self->flush);
    Py_VISIT(self->python_flush);
    Py_VISIT(self->write_method);
    Py_VISIT(self->owner);
    return 0;
}

static int
lines_clear(AccessLines *self)
{
    Py_CLEAR(self->time_module);
    Py_CLEAR(self->perf_counter);
    Py_CLEAR(self->new_second);
    Py_CLEAR(self->reference);
    Py_CLEAR(self->schedule);
    Py_CLEAR(self->flush);
    Py_CLEAR(self->python_flush);
    Py_CLEAR(self->write_method);
    Py_CLEAR(self->owner);
    return 0;
}

static void
lines_dealloc(AccessLines *self)
{
    PyObject_GC_UnTrack(self);
    lines_clear(self);
    PyMem_Free(self->buf);
    PyMem_Free(self->head);
    PyMem_Free(self->middle);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef lines_methods[] = {
    {"log", (PyCFunction)(void (*)(void))lines_log, METH_FASTCALL,
     "log(client, method, path, version, status, size, duration_ms, request_id=None): one line."},
    {"exchange", (PyCFunction)(void (*)(void))lines_exchange, METH_FASTCALL,
     "exchange(exchange, status, size): the line of a finished Exchange."},
    {"second", (PyCFunction)(void (*)(void))lines_second, METH_FASTCALL,
     "second(start, head, middle): the second of the next lines and the text around their milliseconds."},
    {"reset", (PyCFunction)(void (*)(void))lines_reset, METH_FASTCALL,
     "reset(json, reference): the format and the Python reference that makes uncommon lines."},
    {"take", (PyCFunction)lines_take, METH_NOARGS, "take() -> the lines gathered, or None."},
    {"write", (PyCFunction)lines_write, METH_NOARGS,
     "write() -> bytes still waiting: the lines written to output()'s descriptor, without waiting."},
    {"output", (PyCFunction)(void (*)(void))lines_output, METH_FASTCALL,
     "output(fd, mode, backlog_max, owner): where write() sends the lines (fd -1: nowhere)."},
    {"discard", (PyCFunction)lines_discard, METH_NOARGS, "discard() -> the lines given up on."},
    {NULL},
};

static PyTypeObject AccessLinesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.AccessLines",
    .tp_doc = "AccessLines(time_module, new_second, schedule, flush): access-log lines in one buffer.",
    .tp_basicsize = sizeof(AccessLines),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = lines_new,
    .tp_dealloc = (destructor)lines_dealloc,
    .tp_traverse = (traverseproc)lines_traverse,
    .tp_clear = (inquiry)lines_clear,
    .tp_methods = lines_methods,
};

static int
intern(PyObject **to, const char *text)
{
    *to = PyUnicode_InternFromString(text);
    return *to == NULL ? -1 : 0;
}

int
catzilla_accesslog_init(PyObject *module)
{
    static const struct { int which; const char *name; } names[] = {
        {EXCHANGE_REQUEST, "request"}, {EXCHANGE_CONNECTION, "connection"}, {EXCHANGE_STARTED, "started"},
        {REQUEST_CLIENT, "client"}, {REQUEST_METHOD, "method"}, {REQUEST_PATH, "path"},
        {REQUEST_VERSION, "http_version"}, {REQUEST_STATE, "_state"},
        {CONNECTION_CLIENT, "client"}, {CONNECTION_CLIENT_TEXT, "client_text"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (intern(&slots[names[i].which].name, names[i].name) < 0)
            return -1;
    }
    if (intern(&str_time, "time") < 0 || intern(&str_data, "_data") < 0 || intern(&str_request_id, "request_id") < 0
            || intern(&str_client_text_method, "_client_text") < 0)
        return -1;
    PyObject *time_module = PyImport_ImportModule("time");
    if (time_module == NULL)
        return -1;
    genuine_time = PyObject_GetAttrString(time_module, "time");
    genuine_perf_counter = PyObject_GetAttrString(time_module, "perf_counter");
    Py_DECREF(time_module);
    if (genuine_time == NULL || genuine_perf_counter == NULL)
        return -1;
    if (PyType_Ready(&AccessLinesType) < 0)
        return -1;
    if (PyModule_AddIntConstant(module, "EXACT_DURATIONS", EXACT_DURATIONS) < 0
            || PyModule_AddIntConstant(module, "ACCESS_OUT_WRITE", OUT_WRITE) < 0
            || PyModule_AddIntConstant(module, "ACCESS_OUT_PIPE", OUT_PIPE) < 0
            || PyModule_AddIntConstant(module, "ACCESS_OUT_SEND", OUT_SEND) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "AccessLines", (PyObject *)&AccessLinesType);
}
