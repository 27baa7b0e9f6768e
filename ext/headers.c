/* Request-head parsing on the hot path.
 *
 * httptools calls `on_url` and `on_header` once per fragment and per header line; a bound
 * method of HeaderCollector takes those calls directly, so no Python frame runs per header.
 * The collector validates each field (RFC 9110 5.1 token names; no CR, LF or NUL in
 * values), lower-cases the name (common names come from a table of interned strings),
 * enforces the header-block and body limits, and builds the items list and the
 * case-folded map that `Headers` wraps as they arrive, so `take()` only hands them over.
 *
 * parse_query, parse_cookies and parse_content_type are the parsers behind
 * Request.query_params, Request.cookies and form handling.
 *
 * catzilla/headerparse.py is the reference implementation of every function here;
 * tests/test_headerparse.py checks that the two agree on random and adversarial input.
 */
#include "native.h"

#include <stdint.h>
#include <string.h>
#include <structmember.h>

/* Bytes a header line costs against the limit beyond name and value: ": " and CRLF. */
#define LINE_OVERHEAD 4
/* A Content-Length of more than 18 digits cannot fit an int64; no body is that large. */
#define MAX_LENGTH_DIGITS 18
/* Targets up to this size are collected without a heap allocation. */
#define INLINE_TARGET 256

/* Field names browsers and proxies send most, pre-built and interned: a request's names
 * are then shared objects instead of fresh strings. */
static const char *const KNOWN_NAMES[] = {
    "host", "user-agent", "accept", "accept-language", "accept-encoding", "connection",
    "cookie", "content-type", "content-length", "referer", "origin", "cache-control",
    "pragma", "authorization", "upgrade-insecure-requests", "if-none-match",
    "if-modified-since", "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site",
    "sec-fetch-user", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "dnt", "te",
    "transfer-encoding", "expect", "x-forwarded-for", "x-forwarded-proto",
    "x-forwarded-host", "x-real-ip", "x-request-id", "priority", "range", "keep-alive",
    "upgrade", "forwarded",
};
#define NKNOWN (sizeof(KNOWN_NAMES) / sizeof(KNOWN_NAMES[0]))

/* Methods whose names are shared strings rather than made per request. */
static const char *const METHOD_NAMES[] = {
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
};
#define NMETHODS (sizeof(METHOD_NAMES) / sizeof(METHOD_NAMES[0]))

typedef struct {
    PyObject *HeaderError;        /* catzilla.headerparse.HeaderError */
    PyObject *known[NKNOWN];      /* interned str for each KNOWN_NAMES entry */
    Py_ssize_t known_len[NKNOWN];
    PyObject *name_content_length; /* borrowed from `known` */
    PyObject *name_expect;
    PyObject *name_cookie;
    PyObject *name_transfer_encoding;
    PyObject *name_host;
    PyObject *name_upgrade;
    PyObject *name_connection;
    PyObject *name_forwarded;
    PyObject *name_x_forwarded_for;
    PyObject *name_x_forwarded_proto;
    PyObject *str_should_keep_alive; /* the parser's methods take_request() calls */
    PyObject *str_get_http_version;
    PyObject *str_get_method;
    PyObject *version_11;         /* "1.1", as a request kept alive without Connection is */
    PyObject *methods[NMETHODS];  /* interned METHOD_NAMES */
    PyObject *comma;              /* ", " and "; ": separators of combined fields */
    PyObject *semicolon;
} HeaderState;

static HeaderState state;

/* RFC 9110 5.6.2 tchar. */
static uint8_t token_char[256];
/* RFC 9110 5.5: bytes a field value may not contain. */
static uint8_t forbidden_in_value[256];
/* RFC 3986 3.2.2: unreserved, sub-delims and "%" (pct-encoded is checked where it occurs). */
static uint8_t reg_name_char[256];

static inline int
ows(Py_UCS4 c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char
ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static inline int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode `src` into `dst` (at least n bytes); with `plus`, '+' is a space. A '%'
 * that starts no valid escape is kept, as urllib.parse.unquote_to_bytes does. */
Py_ssize_t
unescape(const char *src, Py_ssize_t n, char *dst, int plus)
{
    Py_ssize_t out = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%' && i + 2 < n) {
            int hi = hex_value((unsigned char)src[i + 1]);
            int lo = hi < 0 ? -1 : hex_value((unsigned char)src[i + 2]);
            if (lo >= 0) {
                dst[out++] = (char)(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        dst[out++] = (plus && c == '+') ? ' ' : (char)c;
    }
    return out;
}

/* A path or query component as text: percent-decoded bytes read as UTF-8 (invalid
 * sequences replaced). `scratch` holds at least n bytes. */
PyObject *
decode_component(const char *src, Py_ssize_t n, char *scratch, int plus)
{
    if (memchr(src, '%', (size_t)n) == NULL && (!plus || memchr(src, '+', (size_t)n) == NULL))
        return PyUnicode_DecodeUTF8(src, n, "replace");
    Py_ssize_t len = unescape(src, n, scratch, plus);
    return PyUnicode_DecodeUTF8(scratch, len, "replace");
}

/* ---- HeaderCollector ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_header_size;
    long long max_body_size;
    Py_ssize_t size;          /* bytes of target and header lines so far */
    long long content_length; /* -1: none announced */
    char expect_continue;
    char headers_complete;    /* the head is in; a body may follow */
    char continue_answered;   /* "100 Continue" went out for this request */
    /* True when a 100 Continue is due and not sent yet: an object member, not a getter,
     * because the connection reads it after every read (a member load is specialised). */
    PyObject *awaiting_continue;
    char upgrade;             /* an Upgrade field came: the protocol must look closer */
    /* Fields the end of the head decides on, noted as they pass (see take_request). */
    char has_host;
    char has_connection;
    char has_transfer_encoding;
    char forwarded;           /* Forwarded, X-Forwarded-For or X-Forwarded-Proto came */
    char *target;             /* target_inline, or a heap buffer once it outgrows it */
    Py_ssize_t target_len, target_cap;
    PyObject *items;          /* list of (name, value), created on the first header */
    PyObject *map;            /* dict name -> value, repeated fields combined */
    PyObject *trailers;       /* list of (name, value) after a chunked body, never in `map` */
    char target_inline[INLINE_TARGET];
} HeaderCollector;

static PyObject *
refuse(int status, const char *reason)
{
    PyObject *exc = PyObject_CallFunction(state.HeaderError, "is", status, reason);
    if (exc != NULL) {
        PyErr_SetObject(state.HeaderError, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static void
collector_clear_head(HeaderCollector *self)
{
    self->size = 0;
    self->content_length = -1;
    self->expect_continue = 0;
    self->headers_complete = 0;
    self->continue_answered = 0;
    Py_XSETREF(self->awaiting_continue, Py_NewRef(Py_False));
    self->upgrade = 0;
    self->has_host = self->has_connection = self->has_transfer_encoding = self->forwarded = 0;
    self->target_len = 0;
    Py_CLEAR(self->items);
    Py_CLEAR(self->map);
}

/* A usable (if limitless-refusing) collector even before __init__ runs. */
static PyObject *
collector_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    HeaderCollector *self = (HeaderCollector *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->target = self->target_inline;
    self->target_cap = INLINE_TARGET;
    self->content_length = -1;
    self->awaiting_continue = Py_NewRef(Py_False);
    return (PyObject *)self;
}

static int
collector_init(HeaderCollector *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_header_size", "max_body_size", NULL};
    Py_ssize_t max_header_size;
    long long max_body_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nL", kwlist, &max_header_size, &max_body_size))
        return -1;
    if (max_header_size < 0 || max_body_size < 0) {
        PyErr_SetString(PyExc_ValueError, "limits must not be negative");
        return -1;
    }
    self->max_header_size = max_header_size;
    self->max_body_size = max_body_size;
    if (self->target == NULL) {
        self->target = self->target_inline;
        self->target_cap = INLINE_TARGET;
    }
    collector_clear_head(self);
    return 0;
}

static void
collector_dealloc(HeaderCollector *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->items);
    Py_CLEAR(self->map);
    Py_CLEAR(self->trailers);
    Py_CLEAR(self->awaiting_continue);
    if (self->target != NULL && self->target != self->target_inline)
        PyMem_Free(self->target);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
collector_traverse(HeaderCollector *self, visitproc visit, void *arg)
{
    Py_VISIT(self->items);
    Py_VISIT(self->map);
    Py_VISIT(self->trailers);
    return 0;
}

static int
collector_clear(HeaderCollector *self)
{
    Py_CLEAR(self->items);
    Py_CLEAR(self->map);
    Py_CLEAR(self->trailers);
    return 0;
}

static int
grow_target(HeaderCollector *self, Py_ssize_t needed)
{
    Py_ssize_t cap = self->target_cap * 2;
    while (cap < needed)
        cap *= 2;
    char *buffer;
    if (self->target == self->target_inline) {
        buffer = PyMem_Malloc((size_t)cap);
        if (buffer != NULL)
            memcpy(buffer, self->target, (size_t)self->target_len);
    }
    else {
        buffer = PyMem_Realloc(self->target, (size_t)cap);
    }
    if (buffer == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->target = buffer;
    self->target_cap = cap;
    return 0;
}

static PyObject *
collector_on_url(HeaderCollector *self, PyObject *fragment)
{
    char *data;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(fragment, &data, &n) < 0)
        return NULL;
    if (self->size == 0 && self->trailers != NULL) /* a new message: the last one's are gone */
        Py_CLEAR(self->trailers);
    self->size += n;
    if (self->size > self->max_header_size)
        return refuse(431, "Request Header Fields Too Large");
    if (self->target_len + n > self->target_cap && grow_target(self, self->target_len + n) < 0)
        return NULL;
    memcpy(self->target + self->target_len, data, (size_t)n);
    self->target_len += n;
    Py_RETURN_NONE;
}

/* The lower-cased name as a str: an interned one when it is a known name. */
static PyObject *
lowered_name(const unsigned char *name, Py_ssize_t n)
{
    for (size_t k = 0; k < NKNOWN; k++) {
        if (state.known_len[k] != n)
            continue;
        const unsigned char *known = (const unsigned char *)KNOWN_NAMES[k];
        Py_ssize_t i = 0;
        while (i < n && ascii_lower(name[i]) == known[i])
            i++;
        if (i == n) {
            Py_INCREF(state.known[k]);
            return state.known[k];
        }
    }
    PyObject *text = PyUnicode_New(n, 127);
    if (text == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = ascii_lower(name[i]);
    return text;
}

static int
parse_content_length(HeaderCollector *self, const unsigned char *value, Py_ssize_t n)
{
    if (self->content_length >= 0) {
        refuse(400, "Duplicate Content-Length");
        return -1;
    }
    if (n == 0 || n > MAX_LENGTH_DIGITS) {
        refuse(400, "Invalid Content-Length");
        return -1;
    }
    long long length = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (value[i] < '0' || value[i] > '9') {
            refuse(400, "Invalid Content-Length");
            return -1;
        }
        length = length * 10 + (value[i] - '0');
    }
    self->content_length = length;
    if (length > self->max_body_size) {
        refuse(413, "Content Too Large");
        return -1;
    }
    return 0;
}

/* Is `value` `expected` (lower case), ignoring ASCII case? */
static int
equals_lower(const unsigned char *value, Py_ssize_t n, const char *expected)
{
    Py_ssize_t length = (Py_ssize_t)strlen(expected);
    if (n != length)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (ascii_lower(value[i]) != (unsigned char)expected[i])
            return 0;
    }
    return 1;
}

/* Add the field to the map, combining a repeated one into a list (RFC 9110 5.3); Cookie
 * pairs are joined with "; " instead (RFC 9113 8.2.3). */
static int
combine(PyObject *map, PyObject *key, PyObject *text)
{
    PyObject *previous = PyDict_GetItemWithError(map, key);
    if (previous == NULL)
        return PyErr_Occurred() ? -1 : PyDict_SetItem(map, key, text);
    PyObject *separator = key == state.name_cookie ? state.semicolon : state.comma;
    PyObject *joined = PyUnicode_Concat(previous, separator);
    if (joined == NULL)
        return -1;
    PyObject *combined = PyUnicode_Concat(joined, text);
    Py_DECREF(joined);
    if (combined == NULL)
        return -1;
    int status = PyDict_SetItem(map, key, combined);
    Py_DECREF(combined);
    return status;
}

/* Host's value (RFC 9110 7.2, RFC 3986 3.2.2): IP-literal or reg-name, then an optional
 * ":" and digits. Empty is allowed: a target without an authority is sent so. */
static int
valid_authority(const unsigned char *value, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    if (n > 0 && value[0] == '[') {
        for (i = 1; i < n && value[i] != ']'; i++) {
            unsigned char c = value[i];
            if (!(reg_name_char[c] || c == ':') || c == '%')
                return 0;
        }
        if (i == n)
            return 0; /* no closing bracket */
        i++;
    }
    else {
        for (; i < n && value[i] != ':'; i++) {
            if (!reg_name_char[value[i]])
                return 0;
            if (value[i] == '%' && (i + 2 >= n || hex_value(value[i + 1]) < 0 || hex_value(value[i + 2]) < 0))
                return 0;
        }
    }
    if (i == n)
        return 1;
    if (value[i] != ':')
        return 0;
    for (i++; i < n; i++) {
        if (value[i] < '0' || value[i] > '9')
            return 0;
    }
    return 1;
}

/* A field after a chunked body (RFC 9112 7.1.2): kept apart, so that nothing sent after the
 * body can add to or override what a proxy let through in the head. Steals `key`. */
static PyObject *
add_trailer(HeaderCollector *self, PyObject *key, const unsigned char *value, Py_ssize_t n)
{
    PyObject *text = NULL, *item = NULL, *result = NULL;
    text = PyUnicode_DecodeLatin1((const char *)value, n, NULL);
    if (text == NULL)
        goto cleanup;
    if (self->trailers == NULL && (self->trailers = PyList_New(0)) == NULL)
        goto cleanup;
    item = PyTuple_Pack(2, key, text);
    if (item == NULL || PyList_Append(self->trailers, item) < 0)
        goto cleanup;
    result = Py_None;
    Py_INCREF(result);
cleanup:
    Py_XDECREF(item);
    Py_XDECREF(text);
    Py_DECREF(key);
    return result;
}

static PyObject *
collector_on_header(HeaderCollector *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *key = NULL, *text = NULL, *item = NULL, *result = NULL;
    char *raw_name, *raw_value;
    Py_ssize_t name_len, value_len;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "on_header(name, value) takes two bytes arguments");
        return NULL;
    }
    if (PyBytes_AsStringAndSize(args[0], &raw_name, &name_len) < 0
        || PyBytes_AsStringAndSize(args[1], &raw_value, &value_len) < 0)
        return NULL;
    const unsigned char *name = (const unsigned char *)raw_name;
    const unsigned char *value = (const unsigned char *)raw_value;

    self->size += name_len + value_len + LINE_OVERHEAD;
    if (self->size > self->max_header_size)
        return refuse(431, "Request Header Fields Too Large");
    if (name_len == 0)
        return refuse(400, "Invalid header name");
    for (Py_ssize_t i = 0; i < name_len; i++) {
        if (!token_char[name[i]])
            return refuse(400, "Invalid header name");
    }
    for (Py_ssize_t i = 0; i < value_len; i++) {
        if (forbidden_in_value[value[i]])
            return refuse(400, "Invalid header value");
    }
    while (value_len > 0 && ows(value[0])) {
        value++;
        value_len--;
    }
    while (value_len > 0 && ows(value[value_len - 1]))
        value_len--;

    key = lowered_name(name, name_len);
    if (key == NULL)
        goto cleanup;
    if (self->headers_complete) /* after a chunked body: a trailer field */
        return add_trailer(self, key, value, value_len);
    if (key == state.name_content_length) {
        if (parse_content_length(self, value, value_len) < 0)
            goto cleanup;
    }
    else if (key == state.name_expect && value_len > 0) { /* an empty list expects nothing */
        if (!equals_lower(value, value_len, "100-continue")) { /* the only expectation there is */
            refuse(417, "Expectation Failed");
            goto cleanup;
        }
        self->expect_continue = 1;
    }
    else if (key == state.name_transfer_encoding) {
        if (!equals_lower(value, value_len, "chunked")) {
            /* Bodies are read in full and handed over as sent: only chunked framing, no codings. */
            refuse(501, "Transfer-Encoding other than chunked is not implemented");
            goto cleanup;
        }
        self->has_transfer_encoding = 1;
    }
    else if (key == state.name_host) {
        if (self->has_host) {
            refuse(400, "More than one Host header"); /* RFC 9112 3.2 */
            goto cleanup;
        }
        if (!valid_authority(value, value_len)) {
            refuse(400, "Invalid Host header"); /* RFC 9110 7.2: uri-host [ ":" port ] */
            goto cleanup;
        }
        self->has_host = 1;
    }
    else if (key == state.name_connection) {
        self->has_connection = 1;
    }
    else if (key == state.name_upgrade) {
        self->upgrade = 1;
    }
    else if (key == state.name_forwarded || key == state.name_x_forwarded_for
             || key == state.name_x_forwarded_proto) {
        self->forwarded = 1;
    }
    text = PyUnicode_DecodeLatin1((const char *)value, value_len, NULL);
    if (text == NULL)
        goto cleanup;
    if (self->items == NULL && (self->items = PyList_New(0)) == NULL)
        goto cleanup;
    if (self->map == NULL && (self->map = PyDict_New()) == NULL)
        goto cleanup;
    item = PyTuple_Pack(2, key, text);
    if (item == NULL || PyList_Append(self->items, item) < 0)
        goto cleanup;
    if (combine(self->map, key, text) < 0)
        goto cleanup;
    result = Py_None;
    Py_INCREF(result);
cleanup:
    Py_XDECREF(item);
    Py_XDECREF(text);
    Py_XDECREF(key);
    return result;
}

/* A plain origin-form target ("/path?query") of a head with nothing unusual about it (an
 * Upgrade, trailers): the only kind take_request() handles. Any other takes the caller's
 * cold path, as other target forms do: the usual request pays nothing for them. */
static int
usual_head(HeaderCollector *self)
{
    return self->target_len > 0 && self->target[0] == '/' && !self->upgrade && self->trailers == NULL;
}

/* The path (percent-decoded, read as UTF-8) and query (latin-1) of a usual head's target. */
static int
split_target(HeaderCollector *self, PyObject **path, PyObject **query)
{
    const char *target = self->target;
    Py_ssize_t n = self->target_len;
    char *scratch = NULL;
    const char *mark = memchr(target, '?', (size_t)n);
    Py_ssize_t path_len = mark != NULL ? mark - target : n;
    if (memchr(target, '%', (size_t)path_len) != NULL) {
        scratch = PyMem_Malloc((size_t)path_len);
        if (scratch == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    *path = decode_component(target, path_len, scratch, 0);
    PyMem_Free(scratch);
    if (*path == NULL)
        return -1;
    *query = mark != NULL ? PyUnicode_DecodeLatin1(mark + 1, n - path_len - 1, NULL) : PyUnicode_New(0, 0);
    if (*query == NULL) {
        Py_CLEAR(*path);
        return -1;
    }
    return 0;
}

/* (path, query, items, map) for an origin-form target; (None, target, items, map) for
 * any other form (absolute URI, "*") or an unusual head, which the caller parses on its
 * cold path. */
static PyObject *
collector_take(HeaderCollector *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *path = NULL, *query = NULL, *items = NULL, *map = NULL, *result = NULL;

    items = self->items != NULL ? self->items : PyList_New(0);
    map = self->map != NULL ? self->map : PyDict_New();
    self->items = self->map = NULL; /* ownership moves to the result */
    if (items == NULL || map == NULL)
        goto cleanup;
    if (usual_head(self)) {
        if (split_target(self, &path, &query) < 0)
            goto cleanup;
    }
    else {
        path = Py_NewRef(Py_None);
        query = PyUnicode_DecodeLatin1(self->target, self->target_len, NULL);
        if (query == NULL)
            goto cleanup;
    }
    result = PyTuple_Pack(4, path, query, items, map);
cleanup:
    Py_XDECREF(path);
    Py_XDECREF(query);
    Py_XDECREF(items);
    Py_XDECREF(map);
    collector_clear_head(self);
    return result;
}

/* The method as a str: a shared one for the common methods. Steals `raw` (bytes). */
static PyObject *
method_name(PyObject *raw)
{
    if (raw == NULL)
        return NULL;
    if (!PyBytes_Check(raw)) {
        Py_DECREF(raw);
        PyErr_SetString(PyExc_TypeError, "the parser's method is not bytes");
        return NULL;
    }
    const char *name = PyBytes_AS_STRING(raw);
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    PyObject *text = NULL;
    for (size_t k = 0; k < NMETHODS; k++) {
        if (PyUnicode_GET_LENGTH(state.methods[k]) == n && memcmp(METHOD_NAMES[k], name, (size_t)n) == 0) {
            text = Py_NewRef(state.methods[k]);
            break;
        }
    }
    if (text == NULL)
        text = PyUnicode_DecodeLatin1(name, n, NULL);
    Py_DECREF(raw);
    return text;
}

/* take_request(parser, body, client) -> (request, keep_alive, forwarded), or None for a
 * head take_request does not handle (see usual_head), left for take().
 *
 * The usual request's whole hand-over in one call: the parser's method and keep-alive,
 * the version when it matters (a request kept alive without a Connection field can only be
 * HTTP/1.1), the checks every request passes (RFC 9112 2.3: HTTP/1.x only; 3.2: Host in
 * HTTP/1.1; 6.1: an HTTP/1.0 chunked request closes after), and the Request made of the
 * class set by catzilla.request. `forwarded`: a proxy's forwarding field came. */
static PyObject *
collector_take_request(HeaderCollector *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *keep = NULL, *version = NULL, *method = NULL, *path = NULL, *query = NULL;
    PyObject *items = NULL, *map = NULL, *request = NULL, *result = NULL;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "take_request(parser, body, client)");
        return NULL;
    }
    if (!usual_head(self))
        Py_RETURN_NONE;
    PyObject *parser = args[0], *body = args[1], *client = args[2];
    PyTypeObject *cls = catzilla_request_class();
    if (cls == NULL)
        goto cleanup;
    keep = PyObject_CallMethodNoArgs(parser, state.str_should_keep_alive);
    if (keep == NULL)
        goto cleanup;
    int keep_alive = keep == Py_True;
    if (keep_alive && !self->has_connection) {
        version = Py_NewRef(state.version_11);
    }
    else {
        version = PyObject_CallMethodNoArgs(parser, state.str_get_http_version);
        if (version == NULL)
            goto cleanup;
        if (!PyUnicode_Check(version) || PyUnicode_READY(version) < 0) {
            PyErr_SetString(PyExc_TypeError, "the parser's version is not a str");
            goto cleanup;
        }
        if (keep_alive && self->has_transfer_encoding && PyUnicode_CompareWithASCIIString(version, "1.0") == 0)
            keep_alive = 0; /* framing HTTP/1.0 does not know: close after (RFC 9112 6.1) */
    }
    if (PyUnicode_GET_LENGTH(version) == 0 || PyUnicode_READ_CHAR(version, 0) != '1') {
        refuse(505, "HTTP Version Not Supported"); /* HTTP/0.9, HTTP/2.0 in an HTTP/1 line */
        goto cleanup;
    }
    if (!self->has_host && PyUnicode_CompareWithASCIIString(version, "1.1") == 0) {
        refuse(400, "HTTP/1.1 request without a Host header"); /* RFC 9112 3.2 */
        goto cleanup;
    }
    method = method_name(PyObject_CallMethodNoArgs(parser, state.str_get_method));
    if (method == NULL || split_target(self, &path, &query) < 0)
        goto cleanup;
    items = self->items != NULL ? Py_NewRef(self->items) : PyList_New(0);
    map = self->map != NULL ? Py_NewRef(self->map) : PyDict_New();
    if (items == NULL || map == NULL)
        goto cleanup;
    request = catzilla_make_request(cls, method, path, query, items, map, body, client, version);
    if (request == NULL)
        goto cleanup;
    result = PyTuple_Pack(3, request, keep_alive ? Py_True : Py_False, self->forwarded ? Py_True : Py_False);
cleanup:
    Py_XDECREF(keep);
    Py_XDECREF(version);
    Py_XDECREF(method);
    Py_XDECREF(path);
    Py_XDECREF(query);
    Py_XDECREF(items);
    Py_XDECREF(map);
    Py_XDECREF(request);
    collector_clear_head(self);
    return result;
}

/* take_trailers() -> list of (name, value) received after the last body, or None. */
static PyObject *
collector_take_trailers(HeaderCollector *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *trailers = self->trailers;
    self->trailers = NULL;
    if (trailers == NULL)
        Py_RETURN_NONE;
    return trailers;
}

/* The client announced Expect: 100-continue and a body, its head is complete, and it has
 * not been answered 100 yet (RFC 9110 10.1.1). */
static PyObject *
collector_on_headers_complete(HeaderCollector *self, PyObject *Py_UNUSED(ignored))
{
    self->headers_complete = 1;
    int due = self->expect_continue && !self->continue_answered && self->content_length != 0;
    Py_SETREF(self->awaiting_continue, Py_NewRef(due ? Py_True : Py_False));
    Py_RETURN_NONE;
}

static PyObject *
collector_answer_continue(HeaderCollector *self, PyObject *Py_UNUSED(ignored))
{
    self->continue_answered = 1;
    Py_SETREF(self->awaiting_continue, Py_NewRef(Py_False));
    Py_RETURN_NONE;
}

static PyObject *
collector_reset(HeaderCollector *self, PyObject *Py_UNUSED(ignored))
{
    collector_clear_head(self);
    Py_RETURN_NONE;
}

static PyObject *
collector_get_target(HeaderCollector *self, void *closure)
{
    return PyBytes_FromStringAndSize(self->target, self->target_len);
}

static PyObject *
collector_get_expect_continue(HeaderCollector *self, void *closure)
{
    return PyBool_FromLong(self->expect_continue);
}

static PyObject *
collector_get_headers_complete(HeaderCollector *self, void *closure)
{
    return PyBool_FromLong(self->headers_complete);
}

static PyObject *
collector_get_content_length(HeaderCollector *self, void *closure)
{
    return PyLong_FromLongLong(self->content_length);
}

static PyObject *
collector_get_size(HeaderCollector *self, void *closure)
{
    return PyLong_FromSsize_t(self->size);
}

static PyMethodDef collector_methods[] = {
    {"on_url", (PyCFunction)collector_on_url, METH_O,
     "on_url(fragment: bytes): a piece of the request target (httptools callback)."},
    {"on_header", (PyCFunction)(void (*)(void))collector_on_header, METH_FASTCALL,
     "on_header(name: bytes, value: bytes): one header field (httptools callback)."},
    {"take", (PyCFunction)collector_take, METH_NOARGS,
     "take() -> (path | None, query, items, map), and reset for the next request."},
    {"take_request", (PyCFunction)(void (*)(void))collector_take_request, METH_FASTCALL,
     "take_request(parser, body, client) -> (request, keep_alive, forwarded), or None for an "
     "unusual head (then take()); resets for the next request."},
    {"take_trailers", (PyCFunction)collector_take_trailers, METH_NOARGS,
     "take_trailers() -> [(name, value), ...] after a chunked body, or None."},
    {"on_headers_complete", (PyCFunction)collector_on_headers_complete, METH_NOARGS,
     "on_headers_complete(): the head is in (httptools callback)."},
    {"answer_continue", (PyCFunction)collector_answer_continue, METH_NOARGS,
     "answer_continue(): note that 100 Continue was sent for this request."},
    {"reset", (PyCFunction)collector_reset, METH_NOARGS, "Forget the head collected so far."},
    {NULL},
};

static PyGetSetDef collector_getset[] = {
    {"target", (getter)collector_get_target, NULL, "The request target so far.", NULL},
    {"content_length", (getter)collector_get_content_length, NULL,
     "The announced Content-Length, or -1.", NULL},
    {"expect_continue", (getter)collector_get_expect_continue, NULL,
     "True when the client sent Expect: 100-continue.", NULL},
    {"size", (getter)collector_get_size, NULL, "Bytes of the head counted so far.", NULL},
    {"headers_complete", (getter)collector_get_headers_complete, NULL,
     "True once the head is complete (until take()).", NULL},
    {NULL},
};

static PyMemberDef collector_members[] = {
    {"awaiting_continue", T_OBJECT_EX, offsetof(HeaderCollector, awaiting_continue), READONLY,
     "True when a 100 Continue is due and not sent yet."},
    {NULL},
};

static PyTypeObject HeaderCollectorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.HeaderCollector",
    .tp_doc = "HeaderCollector(max_header_size, max_body_size): one request head from "
              "httptools' callbacks, validated and decoded.",
    .tp_basicsize = sizeof(HeaderCollector),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = collector_new,
    .tp_init = (initproc)collector_init,
    .tp_dealloc = (destructor)collector_dealloc,
    .tp_traverse = (traverseproc)collector_traverse,
    .tp_clear = (inquiry)collector_clear,
    .tp_methods = collector_methods,
    .tp_getset = collector_getset,
    .tp_members = collector_members,
};

/* ---- parse_query ------------------------------------------------------------------------ */

/* The bytes a query string stands for: a str from the server holds them as latin-1
 * (one byte per character); a str built by hand with wider characters means UTF-8. */
int
query_bytes(PyObject *query, const char **data, Py_ssize_t *n)
{
    if (PyBytes_Check(query)) {
        *data = PyBytes_AS_STRING(query);
        *n = PyBytes_GET_SIZE(query);
        return 0;
    }
    if (!PyUnicode_Check(query)) {
        PyErr_SetString(PyExc_TypeError, "parse_query() takes str or bytes");
        return -1;
    }
    if (PyUnicode_KIND(query) == PyUnicode_1BYTE_KIND) {
        *data = (const char *)PyUnicode_1BYTE_DATA(query);
        *n = PyUnicode_GET_LENGTH(query);
        return 0;
    }
    *data = PyUnicode_AsUTF8AndSize(query, n);
    return *data == NULL ? -1 : 0;
}

static PyObject *
parse_query(PyObject *module, PyObject *query)
{
    const char *data;
    Py_ssize_t n;
    PyObject *pairs = NULL, *name = NULL, *value = NULL, *pair = NULL;
    char *scratch = NULL;

    if (query_bytes(query, &data, &n) < 0)
        return NULL;
    pairs = PyList_New(0);
    if (pairs == NULL)
        return NULL;
    if (n > 0 && (scratch = PyMem_Malloc((size_t)n)) == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    const char *end = data + n;
    for (const char *field = data; field < end;) {
        const char *stop = memchr(field, '&', (size_t)(end - field));
        if (stop == NULL)
            stop = end;
        if (stop > field) {
            const char *equals = memchr(field, '=', (size_t)(stop - field));
            const char *name_end = equals != NULL ? equals : stop;
            const char *value_start = equals != NULL ? equals + 1 : stop;
            name = decode_component(field, name_end - field, scratch, 1);
            if (name == NULL)
                goto error;
            value = decode_component(value_start, stop - value_start, scratch, 1);
            if (value == NULL)
                goto error;
            pair = PyTuple_Pack(2, name, value);
            if (pair == NULL || PyList_Append(pairs, pair) < 0)
                goto error;
            Py_CLEAR(name);
            Py_CLEAR(value);
            Py_CLEAR(pair);
        }
        field = stop + 1;
    }
    PyMem_Free(scratch);
    return pairs;
error:
    PyMem_Free(scratch);
    Py_XDECREF(name);
    Py_XDECREF(value);
    Py_XDECREF(pair);
    Py_XDECREF(pairs);
    return NULL;
}

/* ---- parse_cookies ---------------------------------------------------------------------- */

static PyObject *
parse_cookies(PyObject *module, PyObject *header)
{
    if (!PyUnicode_Check(header)) {
        PyErr_SetString(PyExc_TypeError, "parse_cookies() takes a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(header);
    const void *data = PyUnicode_DATA(header);
    Py_ssize_t n = PyUnicode_GET_LENGTH(header);
    PyObject *cookies = PyDict_New(), *name = NULL, *value = NULL;
    if (cookies == NULL)
        return NULL;

    for (Py_ssize_t start = 0; start <= n;) {
        Py_ssize_t stop = start, equals = -1;
        while (stop < n && PyUnicode_READ(kind, data, stop) != ';') {
            if (equals < 0 && PyUnicode_READ(kind, data, stop) == '=')
                equals = stop;
            stop++;
        }
        if (equals >= 0) {
            Py_ssize_t name_start = start, name_end = equals;
            while (name_start < name_end && ows(PyUnicode_READ(kind, data, name_start)))
                name_start++;
            while (name_end > name_start && ows(PyUnicode_READ(kind, data, name_end - 1)))
                name_end--;
            if (name_end > name_start) {
                name = PyUnicode_Substring(header, name_start, name_end);
                if (name == NULL)
                    goto error;
                int seen = PyDict_Contains(cookies, name);
                if (seen < 0)
                    goto error;
                if (!seen) {
                    Py_ssize_t value_start = equals + 1, value_end = stop;
                    while (value_start < value_end && ows(PyUnicode_READ(kind, data, value_start)))
                        value_start++;
                    while (value_end > value_start && ows(PyUnicode_READ(kind, data, value_end - 1)))
                        value_end--;
                    if (value_end - value_start >= 2
                        && PyUnicode_READ(kind, data, value_start) == '"'
                        && PyUnicode_READ(kind, data, value_end - 1) == '"') {
                        value_start++;
                        value_end--;
                    }
                    value = PyUnicode_Substring(header, value_start, value_end);
                    if (value == NULL || PyDict_SetItem(cookies, name, value) < 0)
                        goto error;
                    Py_CLEAR(value);
                }
                Py_CLEAR(name);
            }
        }
        start = stop + 1;
    }
    return cookies;
error:
    Py_XDECREF(name);
    Py_XDECREF(value);
    Py_DECREF(cookies);
    return NULL;
}

/* ---- parse_content_type ----------------------------------------------------------------- */

/* str of chars [start, end) of `text`, ASCII letters lower-cased. */
static PyObject *
lowered_slice(int kind, const void *data, Py_ssize_t start, Py_ssize_t end, Py_UCS4 *scratch)
{
    for (Py_ssize_t i = start; i < end; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        scratch[i - start] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
    }
    return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, scratch, end - start);
}

static PyObject *
parse_content_type(PyObject *module, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "parse_content_type() takes a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    PyObject *params = NULL, *media_type = NULL, *name = NULL, *text = NULL, *result = NULL;
    Py_UCS4 *scratch = PyMem_Malloc(sizeof(Py_UCS4) * (size_t)(n > 0 ? n : 1));
    if (scratch == NULL)
        return PyErr_NoMemory();

    Py_ssize_t semicolon = 0;
    while (semicolon < n && PyUnicode_READ(kind, data, semicolon) != ';')
        semicolon++;
    Py_ssize_t type_start = 0, type_end = semicolon;
    while (type_start < type_end && ows(PyUnicode_READ(kind, data, type_start)))
        type_start++;
    while (type_end > type_start && ows(PyUnicode_READ(kind, data, type_end - 1)))
        type_end--;
    media_type = lowered_slice(kind, data, type_start, type_end, scratch);
    params = PyDict_New();
    if (media_type == NULL || params == NULL)
        goto cleanup;

    Py_ssize_t position = semicolon + 1, end = n;
    while (position < end) {
        Py_ssize_t start = position;
        while (position < end) {
            Py_UCS4 c = PyUnicode_READ(kind, data, position);
            if (c == '=' || c == ';')
                break;
            position++;
        }
        Py_ssize_t name_start = start, name_end = position;
        while (name_start < name_end && ows(PyUnicode_READ(kind, data, name_start)))
            name_start++;
        while (name_end > name_start && ows(PyUnicode_READ(kind, data, name_end - 1)))
            name_end--;
        if (position >= end || PyUnicode_READ(kind, data, position) == ';') {
            position++;
            continue;
        }
        position++; /* '=' */
        while (position < end && ows(PyUnicode_READ(kind, data, position)))
            position++;
        if (position < end && PyUnicode_READ(kind, data, position) == '"') {
            Py_ssize_t length = 0;
            position++;
            while (position < end && PyUnicode_READ(kind, data, position) != '"') {
                if (PyUnicode_READ(kind, data, position) == '\\' && position + 1 < end)
                    position++; /* quoted-pair: the next character stands for itself */
                scratch[length++] = PyUnicode_READ(kind, data, position);
                position++;
            }
            text = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, scratch, length);
            while (position < end && PyUnicode_READ(kind, data, position) != ';')
                position++; /* anything after the closing quote is ignored */
        }
        else {
            Py_ssize_t value_start = position;
            while (position < end && PyUnicode_READ(kind, data, position) != ';')
                position++;
            Py_ssize_t value_end = position;
            while (value_end > value_start && ows(PyUnicode_READ(kind, data, value_end - 1)))
                value_end--;
            text = PyUnicode_Substring(value, value_start, value_end);
        }
        if (text == NULL)
            goto cleanup;
        position++;
        if (name_end > name_start) {
            name = lowered_slice(kind, data, name_start, name_end, scratch);
            if (name == NULL || PyDict_SetItem(params, name, text) < 0)
                goto cleanup;
            Py_CLEAR(name);
        }
        Py_CLEAR(text);
    }
    result = PyTuple_Pack(2, media_type, params);
cleanup:
    PyMem_Free(scratch);
    Py_XDECREF(name);
    Py_XDECREF(text);
    Py_XDECREF(media_type);
    Py_XDECREF(params);
    return result;
}

/* ---- what the server needs of a target on its cold path ------------------------------ */

/* decode_component(raw: bytes) -> str: a path percent-decoded and read as UTF-8. */
static PyObject *
py_decode_component(PyObject *Py_UNUSED(module), PyObject *raw)
{
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "decode_component() takes bytes");
        return NULL;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    char *scratch = PyMem_Malloc(n > 0 ? (size_t)n : 1);
    if (scratch == NULL)
        return PyErr_NoMemory();
    PyObject *text = decode_component(PyBytes_AS_STRING(raw), n, scratch, 0);
    PyMem_Free(scratch);
    return text;
}

/* valid_authority(value: bytes) -> bool: Host's grammar (see the static function). */
static PyObject *
py_valid_authority(PyObject *Py_UNUSED(module), PyObject *value)
{
    if (!PyBytes_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "valid_authority() takes bytes");
        return NULL;
    }
    return PyBool_FromLong(valid_authority((const unsigned char *)PyBytes_AS_STRING(value),
                                           PyBytes_GET_SIZE(value)));
}

/* ---- module wiring ---------------------------------------------------------------------- */

static PyMethodDef header_functions[] = {
    {"decode_component", (PyCFunction)py_decode_component, METH_O,
     "decode_component(raw: bytes) -> str: percent-decoded, read as UTF-8 (invalid bytes replaced)."},
    {"valid_authority", (PyCFunction)py_valid_authority, METH_O,
     "valid_authority(value: bytes) -> bool: an IP-literal or reg-name with an optional port."},
    {"parse_query", (PyCFunction)parse_query, METH_O,
     "parse_query(query: str | bytes) -> list of (name, value), percent- and plus-decoded."},
    {"parse_cookies", (PyCFunction)parse_cookies, METH_O,
     "parse_cookies(header: str) -> dict; the first of repeated names wins."},
    {"parse_content_type", (PyCFunction)parse_content_type, METH_O,
     "parse_content_type(value: str) -> (media type, parameters)."},
    {NULL},
};

/* Letters, digits and `extra` in `table`. */
static void
mark_alnum(uint8_t *table, const char *extra)
{
    for (int c = '0'; c <= '9'; c++)
        table[c] = 1;
    for (int c = 'a'; c <= 'z'; c++)
        table[c] = table[c - 32] = 1;
    for (const char *p = extra; *p; p++)
        table[(unsigned char)*p] = 1;
}

static void
init_tables(void)
{
    mark_alnum(token_char, "!#$%&'*+-.^_`|~");
    mark_alnum(reg_name_char, "-._~!$&'()*+,;=%");
    forbidden_in_value['\r'] = forbidden_in_value['\n'] = forbidden_in_value[0] = 1;
}

int
catzilla_headers_init(PyObject *module)
{
    PyObject *reference = NULL;
    init_tables();
    for (size_t k = 0; k < NKNOWN; k++) {
        state.known[k] = PyUnicode_InternFromString(KNOWN_NAMES[k]);
        if (state.known[k] == NULL)
            return -1;
        state.known_len[k] = (Py_ssize_t)strlen(KNOWN_NAMES[k]);
        if (strcmp(KNOWN_NAMES[k], "content-length") == 0)
            state.name_content_length = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "expect") == 0)
            state.name_expect = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "cookie") == 0)
            state.name_cookie = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "transfer-encoding") == 0)
            state.name_transfer_encoding = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "host") == 0)
            state.name_host = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "upgrade") == 0)
            state.name_upgrade = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "connection") == 0)
            state.name_connection = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "forwarded") == 0)
            state.name_forwarded = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "x-forwarded-for") == 0)
            state.name_x_forwarded_for = state.known[k];
        else if (strcmp(KNOWN_NAMES[k], "x-forwarded-proto") == 0)
            state.name_x_forwarded_proto = state.known[k];
    }
    for (size_t k = 0; k < NMETHODS; k++) {
        if ((state.methods[k] = PyUnicode_InternFromString(METHOD_NAMES[k])) == NULL)
            return -1;
    }
    state.str_should_keep_alive = PyUnicode_InternFromString("should_keep_alive");
    state.str_get_http_version = PyUnicode_InternFromString("get_http_version");
    state.str_get_method = PyUnicode_InternFromString("get_method");
    state.version_11 = PyUnicode_InternFromString("1.1");
    if (state.str_should_keep_alive == NULL || state.str_get_http_version == NULL
        || state.str_get_method == NULL || state.version_11 == NULL)
        return -1;
    state.comma = PyUnicode_InternFromString(", ");
    state.semicolon = PyUnicode_InternFromString("; ");
    if (state.comma == NULL || state.semicolon == NULL)
        return -1;
    /* One exception class for both implementations, defined with the framework's errors
     * (not in the reference module: the server never imports that). */
    reference = PyImport_ImportModule("catzilla.errors");
    if (reference == NULL)
        return -1;
    state.HeaderError = PyObject_GetAttrString(reference, "HeaderError");
    Py_DECREF(reference);
    if (state.HeaderError == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "HeaderError", state.HeaderError) < 0)
        return -1;
    if (PyType_Ready(&HeaderCollectorType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "HeaderCollector", (PyObject *)&HeaderCollectorType) < 0)
        return -1;
    return PyModule_AddFunctions(module, header_functions);
}
