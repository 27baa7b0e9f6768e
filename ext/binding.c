/* Handler arguments for plain handlers, in one C call (catzilla/binding.py, _plain_binder).
 *
 * A plain handler takes path segments and single query values typed `int` or `str`
 * (`Optional` with a default too), an int perhaps bounded by ge/gt/le/lt. Binding.py
 * decides at registration whether a handler is one, and describes its fields to
 * PlainBinder. Per request the binder reads the query string once, without building a
 * dict of it (only the keys the handler names are looked for; the last of a repeated key
 * wins, as `dict(parse_query(...))`), takes what is plainly valid -- a canonical decimal
 * integer (no sign, no leading zero, fewer than 19 digits) within its bounds, any text --
 * and hands every other request to `general` (msgspec, through the long path: the same
 * values and the same errors). Its results are what the pure-Python binder gives
 * (_plain_binder's own Python, which tests/test_native_binding.py compares it with).
 *
 * PositionalCall then calls the handler with those arguments positionally. PlainInvoke
 * does both at once for an inline `async def` handler: the values go from the query string
 * straight onto the call's stack, with no dict of keyword arguments in between.
 */
#include "native.h"

#include <stddef.h>
#include <string.h>
#include <structmember.h>

#define MAX_FIELDS 16
#define MAX_BOUNDS 4
#define STACK_SCRATCH 256

enum { BOUND_GE, BOUND_GT, BOUND_LE, BOUND_LT };

typedef struct {
    PyObject *name;      /* the handler's parameter */
    PyObject *key;       /* its name on the wire (ASCII) */
    PyObject *default_;  /* NULL when required */
    char from_path;
    char is_int;
    int nbounds;
    char ops[MAX_BOUNDS];
    long long bounds[MAX_BOUNDS];
} PlainField;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Py_ssize_t nfields;
    PlainField fields[MAX_FIELDS];
    PyObject *request_names;  /* tuple of str: parameters that receive the request */
    PyObject *general;        /* the binder for everything not plainly valid */
    char any_query;
    char any_path;
} PlainBinder;

static PyObject *str_query_string;
static PyObject *str_path_params;

/* The request class whose query_string and path_params are read at their offsets (the
 * T_OBJECT_EX members ext/request.c declares, found through their descriptors), so the
 * binder does not look them up by name per request; any other object is asked by name. */
static PyTypeObject *fields_class;
static Py_ssize_t query_offset, path_params_offset;

static Py_ssize_t
member_offset(PyTypeObject *type, PyObject *name)
{
    PyObject *descr = PyObject_GetAttr((PyObject *)type, name);
    Py_ssize_t offset = -1;
    if (descr == NULL)
        PyErr_Clear();
    else if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READONLY))
            offset = member->offset;
    }
    Py_XDECREF(descr);
    return offset;
}

/* Once, when the first binder is made (catzilla.request has set its class by then). */
static void
find_fields_class(void)
{
    if (fields_class != NULL)
        return;
    PyTypeObject *type = catzilla_request_class();
    if (type == NULL) {
        PyErr_Clear();
        return;
    }
    Py_ssize_t query = member_offset(type, str_query_string), params = member_offset(type, str_path_params);
    if (query < 0 || params < 0)
        return;
    query_offset = query;
    path_params_offset = params;
    fields_class = (PyTypeObject *)Py_NewRef(type);
}

/* request.<name>, a new reference. */
static PyObject *
request_field(PyObject *request, PyObject *name, Py_ssize_t offset)
{
    if (Py_TYPE(request) == fields_class) {
        PyObject *value = *(PyObject **)((char *)request + offset);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(request, name);
}

/* A canonical decimal integer as msgspec reads one without a doubt: digits only, no
 * leading zero, fewer than 19 of them (so it fits a long long). */
static int
plain_int(const char *s, Py_ssize_t n, long long *out)
{
    if (n <= 0 || n >= 19 || (s[0] == '0' && n > 1))
        return 0;
    long long value = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        value = value * 10 + (s[i] - '0');
    }
    *out = value;
    return 1;
}

static int
within(const PlainField *field, long long value)
{
    for (int i = 0; i < field->nbounds; i++) {
        long long bound = field->bounds[i];
        switch (field->ops[i]) {
        case BOUND_GE: if (!(value >= bound)) return 0; break;
        case BOUND_GT: if (!(value > bound)) return 0; break;
        case BOUND_LE: if (!(value <= bound)) return 0; break;
        default: if (!(value < bound)) return 0; break;
        }
    }
    return 1;
}

static inline int
needs_decoding(const char *s, Py_ssize_t n)
{
    return memchr(s, '%', (size_t)n) != NULL || memchr(s, '+', (size_t)n) != NULL;
}

/* The plain integer in a query value (percent- and plus-decoded first), as a Python int;
 * NULL without an exception when it is not one. */
static PyObject *
query_int(const PlainField *field, const char *raw, Py_ssize_t n, char *scratch)
{
    long long value;
    if (needs_decoding(raw, n)) {
        n = unescape(raw, n, scratch, 1);
        raw = scratch;
    }
    if (!plain_int(raw, n, &value) || !within(field, value))
        return NULL;
    return PyLong_FromLongLong(value);
}

/* The plain integer in a path segment (already a str), or NULL without an exception. */
static PyObject *
path_int(const PlainField *field, PyObject *segment)
{
    long long value;
    if (!PyUnicode_CheckExact(segment) || !PyUnicode_IS_ASCII(segment))
        return NULL;
    if (!plain_int((const char *)PyUnicode_1BYTE_DATA(segment), PyUnicode_GET_LENGTH(segment), &value)
            || !within(field, value))
        return NULL;
    return PyLong_FromLongLong(value);
}

/* The binder's fields of `request`, new references in `values` (nfields of them, all NULL
 * on entry): 1 when every one is plainly valid (the path parameters then rewritten as
 * their values), 0 when one is not (`values` cleared: general's to decide), -1 on error. */
static int
binder_values(PlainBinder *self, PyObject *request, PyObject **values)
{
    Py_ssize_t starts[MAX_FIELDS], lengths[MAX_FIELDS];
    char found[MAX_FIELDS] = {0};
    char stack_scratch[STACK_SCRATCH];
    char *scratch = stack_scratch, *heap_scratch = NULL;
    PyObject *query = NULL, *path_params = NULL;
    const char *data = NULL;
    Py_ssize_t n = 0, nfields = self->nfields;
    int plain = 1, status = -1;

    if (self->any_query) {
        query = request_field(request, str_query_string, query_offset);
        if (query == NULL || (query != Py_None && query_bytes(query, &data, &n) < 0))
            goto cleanup;
        if (n > STACK_SCRATCH) {
            if ((heap_scratch = PyMem_Malloc((size_t)n)) == NULL) {
                PyErr_NoMemory();
                goto cleanup;
            }
            scratch = heap_scratch;
        }
        /* Fields split as parse_query splits them: on '&', empty ones skipped, a name
         * without '=' has the empty value. */
        const char *end = data + n;
        for (const char *pair = data; pair < end;) {
            const char *stop = memchr(pair, '&', (size_t)(end - pair));
            if (stop == NULL)
                stop = end;
            if (stop > pair) {
                const char *equals = memchr(pair, '=', (size_t)(stop - pair));
                const char *name = pair, *value = equals != NULL ? equals + 1 : stop;
                Py_ssize_t name_len = (equals != NULL ? equals : stop) - pair;
                if (needs_decoding(name, name_len)) {
                    name_len = unescape(name, name_len, scratch, 1);
                    name = scratch;
                }
                /* Keys are ASCII (checked at construction): equal bytes are equal text,
                 * and decoded bytes that are not ASCII can equal no key. */
                for (Py_ssize_t i = 0; i < nfields; i++) {
                    const PlainField *field = &self->fields[i];
                    if (!field->from_path && PyUnicode_GET_LENGTH(field->key) == name_len
                            && memcmp(PyUnicode_1BYTE_DATA(field->key), name, (size_t)name_len) == 0) {
                        found[i] = 1;
                        starts[i] = value - data;
                        lengths[i] = stop - value;
                    }
                }
            }
            pair = stop + 1;
        }
    }
    if (self->any_path) {
        path_params = request_field(request, str_path_params, path_params_offset);
        if (path_params == NULL)
            goto cleanup;
        if (!PyDict_CheckExact(path_params)) {
            status = 0;
            goto cleanup;
        }
    }
    for (Py_ssize_t i = 0; i < nfields && plain; i++) {
        const PlainField *field = &self->fields[i];
        if (field->from_path) {
            PyObject *segment = PyDict_GetItemWithError(path_params, field->key);  /* borrowed */
            if (segment == NULL) {
                if (PyErr_Occurred())
                    goto cleanup;
                plain = 0;
            }
            else if (field->is_int) {
                values[i] = path_int(field, segment);
                plain = values[i] != NULL;
            }
            else {
                values[i] = Py_NewRef(segment);
            }
        }
        else if (!found[i]) {
            if (field->default_ == NULL)
                plain = 0;
            else
                values[i] = Py_NewRef(field->default_);
        }
        else if (field->is_int) {
            values[i] = query_int(field, data + starts[i], lengths[i], scratch);
            plain = values[i] != NULL;
        }
        else {
            values[i] = decode_component(data + starts[i], lengths[i], scratch, 1);
            if (values[i] == NULL)
                goto cleanup;
        }
        if (PyErr_Occurred())
            goto cleanup;
    }
    if (!plain) {
        status = 0;
        goto cleanup;
    }
    /* The handler's view of a path parameter is the converted value (as the long path
     * leaves it in request.path_params). */
    for (Py_ssize_t i = 0; i < nfields; i++) {
        const PlainField *field = &self->fields[i];
        if (field->from_path && field->is_int && PyDict_SetItem(path_params, field->key, values[i]) < 0)
            goto cleanup;
    }
    status = 1;
cleanup:
    if (status != 1) {
        for (Py_ssize_t i = 0; i < nfields; i++)
            Py_CLEAR(values[i]);
    }
    PyMem_Free(heap_scratch);
    Py_XDECREF(query);
    Py_XDECREF(path_params);
    return status;
}

static PyObject *
binder_bind(PlainBinder *self, PyObject *request)
{
    PyObject *values[MAX_FIELDS] = {NULL}, *result = NULL;
    Py_ssize_t nfields = self->nfields;
    int status = binder_values(self, request, values);
    if (status < 0)
        return NULL;
    if (status == 0)
        return PyObject_CallOneArg(self->general, request);
    result = PyDict_New();
    if (result == NULL)
        goto cleanup;
    for (Py_ssize_t i = 0; i < nfields; i++) {
        if (PyDict_SetItem(result, self->fields[i].name, values[i]) < 0)
            goto fail;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->request_names); i++) {
        if (PyDict_SetItem(result, PyTuple_GET_ITEM(self->request_names, i), request) < 0)
            goto fail;
    }
    goto cleanup;
fail:
    Py_CLEAR(result);
cleanup:
    for (Py_ssize_t i = 0; i < nfields; i++)
        Py_XDECREF(values[i]);
    return result;
}

static PyObject *
binder_vectorcall(PlainBinder *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "a binder takes the request, positionally");
        return NULL;
    }
    return binder_bind(self, args[0]);
}

static int
bound_op(PyObject *name)
{
    static const char *const NAMES[] = {"ge", "gt", "le", "lt"};
    for (int i = 0; i < 4; i++) {
        if (PyUnicode_CompareWithASCIIString(name, NAMES[i]) == 0)
            return i;
    }
    return -1;
}

/* One field from its description: (name, from_path, key, is_int, required, default,
 * bounds), bounds a tuple of (ge|gt|le|lt, int). */
static int
field_init(PlainField *field, PyObject *spec)
{
    PyObject *name, *key, *default_, *bounds;
    int from_path, is_int, required;
    if (!PyTuple_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "a field is a tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(spec, "UpUppOO!;a field is (name, from_path, key, "
                                                  "is_int, required, default, bounds)",
                                                  &name, &from_path, &key, &is_int, &required, &default_,
                                                  &PyTuple_Type, &bounds))
        return -1;
    if (!PyUnicode_IS_ASCII(key)) {
        PyErr_SetString(PyExc_ValueError, "a plain binder's keys are ASCII");
        return -1;
    }
    if (PyTuple_GET_SIZE(bounds) > MAX_BOUNDS) {
        PyErr_SetString(PyExc_ValueError, "too many bounds");
        return -1;
    }
    field->nbounds = (int)PyTuple_GET_SIZE(bounds);
    for (int i = 0; i < field->nbounds; i++) {
        PyObject *bound = PyTuple_GET_ITEM(bounds, i);
        int op = -1, overflow = 0;
        if (PyTuple_Check(bound) && PyTuple_GET_SIZE(bound) == 2 && PyUnicode_Check(PyTuple_GET_ITEM(bound, 0))
                && PyLong_CheckExact(PyTuple_GET_ITEM(bound, 1)))
            op = bound_op(PyTuple_GET_ITEM(bound, 0));
        if (op < 0) {
            PyErr_SetString(PyExc_ValueError, "a bound is (ge|gt|le|lt, int)");
            return -1;
        }
        field->ops[i] = (char)op;
        field->bounds[i] = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(bound, 1), &overflow);
        if (field->bounds[i] == -1 && PyErr_Occurred())
            return -1;
        if (overflow) {
            PyErr_SetString(PyExc_ValueError, "a bound beyond 64 bits");
            return -1;
        }
    }
    field->name = Py_NewRef(name);
    field->key = Py_NewRef(key);
    field->default_ = required ? NULL : Py_NewRef(default_);
    field->from_path = (char)from_path;
    field->is_int = (char)is_int;
    return 0;
}

static int
binder_clear(PlainBinder *self)
{
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        Py_CLEAR(self->fields[i].name);
        Py_CLEAR(self->fields[i].key);
        Py_CLEAR(self->fields[i].default_);
    }
    self->nfields = 0;
    Py_CLEAR(self->request_names);
    Py_CLEAR(self->general);
    return 0;
}

static int
binder_traverse(PlainBinder *self, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < self->nfields; i++)
        Py_VISIT(self->fields[i].default_);
    Py_VISIT(self->request_names);
    Py_VISIT(self->general);
    return 0;
}

static void
binder_dealloc(PlainBinder *self)
{
    PyObject_GC_UnTrack(self);
    binder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
binder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fields", "request_names", "general", NULL};
    PyObject *fields, *request_names, *general;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O:PlainBinder", keywords, &PyTuple_Type, &fields,
                                     &PyTuple_Type, &request_names, &general))
        return NULL;
    if (PyTuple_GET_SIZE(fields) > MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "a plain binder takes at most %d fields", MAX_FIELDS);
        return NULL;
    }
    find_fields_class();
    PlainBinder *self = (PlainBinder *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)binder_vectorcall;
    self->request_names = Py_NewRef(request_names);
    self->general = Py_NewRef(general);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
        if (field_init(&self->fields[i], PyTuple_GET_ITEM(fields, i)) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        self->nfields = i + 1;
        if (self->fields[i].from_path)
            self->any_path = 1;
        else
            self->any_query = 1;
    }
    return (PyObject *)self;
}

static PyTypeObject PlainBinderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.PlainBinder",
    .tp_doc = "PlainBinder(fields, request_names, general): bind(request) -> the handler's keyword "
              "arguments, or general(request) for anything not plainly valid.",
    .tp_basicsize = sizeof(PlainBinder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = binder_new,
    .tp_dealloc = (destructor)binder_dealloc,
    .tp_traverse = (traverseproc)binder_traverse,
    .tp_clear = (inquiry)binder_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(PlainBinder, vectorcall),
};

/* ---- PositionalCall ------------------------------------------------------------------ */

/* `endpoint(request, **kwargs)` without the keywords: a call with a dict of keyword
 * arguments builds a second dict, unpacks it into names and values, and matches each name
 * with the handler's parameters, per request. When the arguments are exactly the
 * parameters that follow the request, in the signature read at registration (`names`),
 * the same values go positionally. Any other call -- another endpoint (a wrapper), other
 * keys -- is made with the keywords, as before. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *endpoint;  /* the handler whose signature `names` was read from */
    PyObject *names;     /* tuple of str: its parameters after the request, in order */
} PositionalCall;

static PyObject *
call_with_keywords(PyObject *endpoint, PyObject *request, PyObject *kwargs)
{
    if (kwargs == Py_None)
        return PyObject_CallOneArg(endpoint, request);
    PyObject *args = PyTuple_Pack(1, request);
    if (args == NULL)
        return NULL;
    PyObject *result = PyObject_Call(endpoint, args, kwargs);
    Py_DECREF(args);
    return result;
}

static PyObject *
positional_vectorcall(PositionalCall *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *stack[MAX_FIELDS + 1];
    if (PyVectorcall_NARGS(nargsf) != 3 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "call(endpoint, request, kwargs), positionally");
        return NULL;
    }
    PyObject *endpoint = args[0], *request = args[1], *kwargs = args[2];
    if (kwargs != Py_None && !PyDict_Check(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "kwargs is a dict or None");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(self->names);
    if (endpoint != self->endpoint || !PyDict_CheckExact(kwargs) || PyDict_GET_SIZE(kwargs) != n)
        return call_with_keywords(endpoint, request, kwargs);
    stack[0] = request;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyDict_GetItemWithError(kwargs, PyTuple_GET_ITEM(self->names, i));  /* borrowed */
        if (value == NULL) {
            if (PyErr_Occurred())
                return NULL;
            return call_with_keywords(endpoint, request, kwargs);
        }
        stack[i + 1] = value;
    }
    /* The dict holds the values while the call runs: it is the caller's. */
    return PyObject_Vectorcall(endpoint, stack, (size_t)(n + 1), NULL);
}

static int
positional_clear(PositionalCall *self)
{
    Py_CLEAR(self->endpoint);
    Py_CLEAR(self->names);
    return 0;
}

static int
positional_traverse(PositionalCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->endpoint);
    Py_VISIT(self->names);
    return 0;
}

static void
positional_dealloc(PositionalCall *self)
{
    PyObject_GC_UnTrack(self);
    positional_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
positional_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"endpoint", "names", NULL};
    PyObject *endpoint, *names;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!:PositionalCall", keywords, &endpoint, &PyTuple_Type,
                                     &names))
        return NULL;
    if (PyTuple_GET_SIZE(names) > MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "a positional call takes at most %d arguments after the request",
                     MAX_FIELDS);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "names are str");
            return NULL;
        }
    }
    PositionalCall *self = (PositionalCall *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)positional_vectorcall;
    self->endpoint = Py_NewRef(endpoint);
    self->names = Py_NewRef(names);
    return (PyObject *)self;
}

static PyTypeObject PositionalCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.PositionalCall",
    .tp_doc = "PositionalCall(endpoint, names): call(endpoint, request, kwargs) is "
              "endpoint(request, **kwargs), made positionally when kwargs are exactly `names`.",
    .tp_basicsize = sizeof(PositionalCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = positional_new,
    .tp_dealloc = (destructor)positional_dealloc,
    .tp_traverse = (traverseproc)positional_traverse,
    .tp_clear = (inquiry)positional_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(PositionalCall, vectorcall),
};

/* ---- PlainInvoke --------------------------------------------------------------------- */

/* `endpoint(request, **bind(request))` in one call, for a plain binder and a plain function
 * whose positional parameters are exactly the bound ones (and the request): `slots` says,
 * per positional argument, which field's value goes there, or -1 for the request. A
 * request that is not plainly valid, or another endpoint than the one it was made for (a
 * wrapper put in its place), goes to `fallback(endpoint, request)`, the same call made the
 * long way (binding.py's _invoke_reference). */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PlainBinder *binder;
    PyObject *endpoint;
    PyObject *fallback;
    Py_ssize_t nargs;
    signed char slots[MAX_FIELDS + 1];
} PlainInvoke;

static PyObject *
invoke_vectorcall(PlainInvoke *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *values[MAX_FIELDS] = {NULL}, *stack[MAX_FIELDS + 1];
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "invoke(endpoint, request), positionally");
        return NULL;
    }
    PyObject *endpoint = args[0], *request = args[1];
    if (endpoint != self->endpoint)
        return PyObject_Vectorcall(self->fallback, args, 2, NULL);
    int status = binder_values(self->binder, request, values);
    if (status < 0)
        return NULL;
    if (status == 0)
        return PyObject_Vectorcall(self->fallback, args, 2, NULL);
    for (Py_ssize_t i = 0; i < self->nargs; i++)
        stack[i] = self->slots[i] < 0 ? request : values[(int)self->slots[i]];
    PyObject *result = PyObject_Vectorcall(endpoint, stack, (size_t)self->nargs, NULL);
    for (Py_ssize_t i = 0; i < self->binder->nfields; i++)
        Py_XDECREF(values[i]);
    return result;
}

static PyTypeObject PlainInvokeType;

/* For ext/connection.c: is `how` a route's PlainInvoke (run straight, bound and called)? */
int
catzilla_is_plain_invoke(PyObject *obj)
{
    return Py_IS_TYPE(obj, &PlainInvokeType);
}

static int
invoke_clear(PlainInvoke *self)
{
    Py_CLEAR(self->binder);
    Py_CLEAR(self->endpoint);
    Py_CLEAR(self->fallback);
    return 0;
}

static int
invoke_traverse(PlainInvoke *self, visitproc visit, void *arg)
{
    Py_VISIT(self->binder);
    Py_VISIT(self->endpoint);
    Py_VISIT(self->fallback);
    return 0;
}

static void
invoke_dealloc(PlainInvoke *self)
{
    PyObject_GC_UnTrack(self);
    invoke_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
invoke_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"binder", "endpoint", "slots", "fallback", NULL};
    PyObject *binder, *endpoint, *slots, *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO!O:PlainInvoke", keywords, &PlainBinderType, &binder,
                                     &endpoint, &PyTuple_Type, &slots, &fallback))
        return NULL;
    Py_ssize_t nargs = PyTuple_GET_SIZE(slots), nfields = ((PlainBinder *)binder)->nfields;
    if (nargs > MAX_FIELDS + 1) {
        PyErr_Format(PyExc_ValueError, "a plain invoke passes at most %d arguments", MAX_FIELDS + 1);
        return NULL;
    }
    signed char parsed[MAX_FIELDS + 1];
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *item = PyTuple_GET_ITEM(slots, i);
        long slot = PyLong_CheckExact(item) ? PyLong_AsLong(item) : -2;
        if (slot == -1 && PyErr_Occurred())
            return NULL;
        if (slot < -1 || slot >= nfields) {
            PyErr_SetString(PyExc_ValueError, "a slot is a field's index, or -1 for the request");
            return NULL;
        }
        parsed[i] = (signed char)slot;
    }
    PlainInvoke *self = (PlainInvoke *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)invoke_vectorcall;
    self->binder = (PlainBinder *)Py_NewRef(binder);
    self->endpoint = Py_NewRef(endpoint);
    self->fallback = Py_NewRef(fallback);
    self->nargs = nargs;
    memcpy(self->slots, parsed, (size_t)nargs);
    return (PyObject *)self;
}

static PyTypeObject PlainInvokeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.PlainInvoke",
    .tp_doc = "PlainInvoke(binder, endpoint, slots, fallback): invoke(endpoint, request) is "
              "endpoint(request, **binder(request)), the values passed positionally by `slots`.",
    .tp_basicsize = sizeof(PlainInvoke),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = invoke_new,
    .tp_dealloc = (destructor)invoke_dealloc,
    .tp_traverse = (traverseproc)invoke_traverse,
    .tp_clear = (inquiry)invoke_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(PlainInvoke, vectorcall),
};

int
catzilla_binding_init(PyObject *module)
{
    str_query_string = PyUnicode_InternFromString("query_string");
    str_path_params = PyUnicode_InternFromString("path_params");
    if (str_query_string == NULL || str_path_params == NULL)
        return -1;
    if (PyType_Ready(&PlainBinderType) < 0 || PyType_Ready(&PositionalCallType) < 0
            || PyType_Ready(&PlainInvokeType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "PlainInvoke", (PyObject *)&PlainInvokeType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "PlainBinder", (PyObject *)&PlainBinderType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "PositionalCall", (PyObject *)&PositionalCallType);
}
