/* Path templates matched segment by segment (catzilla/routing.py, Router.match_template).
 *
 * A template whose parameters are whole segments, `{name}` / `{name:str}` (any non-empty
 * segment) or `{name:int}` (`-?[0-9]+`), and whose literal segments are ASCII is matched
 * here, without its regex: the path is split on '/' once, and each template, in the order
 * they were added, compares its segments. The answer is Router.resolve's: (route, path
 * parameters, None), (None, None, allow) for a path without this method, or (None, None,
 * None) when nothing matches. A path the regexes could read otherwise -- not ASCII, or
 * ending in a newline (where `$` also matches) -- goes to `fallback(method, path)`, which
 * tries the regexes. tests/test_templates.py compares both ways.
 *
 * Resolver is Router.resolve itself: the paths without parameters by one dict look-up,
 * the others by `templates` (Router.match_template), with no Python frame in between.
 * Router._resolve is its reference.
 */
#include "native.h"

#include <stddef.h>
#include <string.h>

#define MAX_SEGMENTS 64

enum { SEGMENT_LITERAL, SEGMENT_TEXT, SEGMENT_INT };

typedef struct {
    char kind;
    PyObject *text;  /* the literal (ASCII), or the parameter's name */
} Segment;

typedef struct {
    Py_ssize_t nsegments;
    Segment *segments;
    PyObject *table;  /* method -> route */
} Template;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Py_ssize_t ntemplates;
    Template *templates;
    PyObject *allowed;    /* allowed(table) -> the Allow header of a path */
    PyObject *fallback;   /* fallback(method, path): the regexes, for the paths they must decide */
} TemplateMatcher;

static int
segment_matches(const Segment *segment, const char *s, Py_ssize_t n)
{
    switch (segment->kind) {
    case SEGMENT_LITERAL:
        return PyUnicode_GET_LENGTH(segment->text) == n
               && memcmp(PyUnicode_1BYTE_DATA(segment->text), s, (size_t)n) == 0;
    case SEGMENT_TEXT:
        return n > 0;
    default:
        if (n > 0 && s[0] == '-') {
            s++;
            n--;
        }
        if (n == 0)
            return 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return 0;
        }
        return 1;
    }
}

static PyObject *
no_route(PyObject *allow)
{
    return PyTuple_Pack(3, Py_None, Py_None, allow);
}

static PyObject *
matcher_match(TemplateMatcher *self, PyObject *method, PyObject *path)
{
    Py_ssize_t starts[MAX_SEGMENTS], ends[MAX_SEGMENTS], nsegments = 0;

    if (!PyUnicode_Check(path)) {
        PyErr_SetString(PyExc_TypeError, "a path is a str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(path);
    if (!PyUnicode_IS_ASCII(path) || (n > 0 && PyUnicode_READ_CHAR(path, n - 1) == '\n'))
    {
        PyObject *both[2] = {method, path};
        return PyObject_Vectorcall(self->fallback, both, 2, NULL);
    }
    const char *data = (const char *)PyUnicode_1BYTE_DATA(path);
    for (Py_ssize_t start = 0;;) {
        const char *slash = memchr(data + start, '/', (size_t)(n - start));
        Py_ssize_t end = slash != NULL ? slash - data : n;
        if (nsegments == MAX_SEGMENTS)  /* longer than any template (see matcher_new) */
            return no_route(Py_None);
        starts[nsegments] = start;
        ends[nsegments++] = end;
        if (slash == NULL)
            break;
        start = end + 1;
    }
    for (Py_ssize_t t = 0; t < self->ntemplates; t++) {
        const Template *template = &self->templates[t];
        if (template->nsegments != nsegments)
            continue;
        Py_ssize_t i = 0;
        while (i < nsegments && segment_matches(&template->segments[i], data + starts[i], ends[i] - starts[i]))
            i++;
        if (i < nsegments)
            continue;
        PyObject *route = PyDict_GetItemWithError(template->table, method);  /* borrowed */
        if (route == NULL) {
            if (PyErr_Occurred())
                return NULL;
            PyObject *allow = PyObject_CallOneArg(self->allowed, template->table);
            if (allow == NULL)
                return NULL;
            PyObject *answer = no_route(allow);
            Py_DECREF(allow);
            return answer;
        }
        PyObject *params = PyDict_New(), *answer = NULL;
        if (params == NULL)
            return NULL;
        for (i = 0; i < nsegments; i++) {
            const Segment *segment = &template->segments[i];
            if (segment->kind == SEGMENT_LITERAL)
                continue;
            PyObject *value = PyUnicode_FromStringAndSize(data + starts[i], ends[i] - starts[i]);
            if (value == NULL || PyDict_SetItem(params, segment->text, value) < 0) {
                Py_XDECREF(value);
                goto cleanup;
            }
            Py_DECREF(value);
        }
        answer = PyTuple_Pack(3, route, params, Py_None);
    cleanup:
        Py_DECREF(params);
        return answer;
    }
    return no_route(Py_None);
}

static PyObject *
matcher_vectorcall(TemplateMatcher *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "match(method, path), positionally");
        return NULL;
    }
    return matcher_match(self, args[0], args[1]);
}

/* One template from (segments, table): a segment is an ASCII str (a literal) or
 * (name, "str" | "int"). */
static int
template_init(Template *template, PyObject *spec)
{
    PyObject *segments, *table;
    if (!PyTuple_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "a template is (segments, table)");
        return -1;
    }
    if (!PyArg_ParseTuple(spec, "O!O!;a template is (segments, table)", &PyTuple_Type, &segments,
                          &PyDict_Type, &table))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(segments);
    if (n == 0 || n > MAX_SEGMENTS) {
        PyErr_Format(PyExc_ValueError, "a template has 1 to %d segments", MAX_SEGMENTS);
        return -1;
    }
    template->segments = PyMem_Calloc((size_t)n, sizeof(Segment));
    if (template->segments == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    template->table = Py_NewRef(table);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(segments, i), *name, *converter;
        Segment *segment = &template->segments[i];
        if (PyUnicode_Check(item)) {
            if (!PyUnicode_IS_ASCII(item)) {
                PyErr_SetString(PyExc_ValueError, "a literal segment is ASCII");
                return -1;
            }
            segment->kind = SEGMENT_LITERAL;
            segment->text = Py_NewRef(item);
        }
        else if (PyTuple_Check(item) && PyArg_ParseTuple(item, "UU;a parameter is (name, converter)", &name,
                                                         &converter)) {
            if (PyUnicode_CompareWithASCIIString(converter, "str") == 0)
                segment->kind = SEGMENT_TEXT;
            else if (PyUnicode_CompareWithASCIIString(converter, "int") == 0)
                segment->kind = SEGMENT_INT;
            else {
                PyErr_SetString(PyExc_ValueError, "a parameter's converter is str or int");
                return -1;
            }
            segment->text = Py_NewRef(name);
        }
        else {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "a segment is a str or (name, converter)");
            return -1;
        }
        template->nsegments = i + 1;
    }
    return 0;
}

static int
matcher_clear(TemplateMatcher *self)
{
    for (Py_ssize_t t = 0; t < self->ntemplates; t++) {
        Template *template = &self->templates[t];
        for (Py_ssize_t i = 0; i < template->nsegments; i++)
            Py_CLEAR(template->segments[i].text);
        template->nsegments = 0;
        PyMem_Free(template->segments);
        template->segments = NULL;
        Py_CLEAR(template->table);
    }
    self->ntemplates = 0;
    PyMem_Free(self->templates);
    self->templates = NULL;
    Py_CLEAR(self->allowed);
    Py_CLEAR(self->fallback);
    return 0;
}

static int
matcher_traverse(TemplateMatcher *self, visitproc visit, void *arg)
{
    for (Py_ssize_t t = 0; t < self->ntemplates; t++)
        Py_VISIT(self->templates[t].table);
    Py_VISIT(self->allowed);
    Py_VISIT(self->fallback);
    return 0;
}

static void
matcher_dealloc(TemplateMatcher *self)
{
    PyObject_GC_UnTrack(self);
    matcher_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
matcher_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"templates", "allowed", "fallback", NULL};
    PyObject *templates, *allowed, *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO:TemplateMatcher", keywords, &PyTuple_Type, &templates,
                                     &allowed, &fallback))
        return NULL;
    TemplateMatcher *self = (TemplateMatcher *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)matcher_vectorcall;
    self->allowed = Py_NewRef(allowed);
    self->fallback = Py_NewRef(fallback);
    Py_ssize_t n = PyTuple_GET_SIZE(templates);
    if (n > 0 && (self->templates = PyMem_Calloc((size_t)n, sizeof(Template))) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t t = 0; t < n; t++) {
        self->ntemplates = t + 1;  /* what matcher_clear frees, even half made */
        if (template_init(&self->templates[t], PyTuple_GET_ITEM(templates, t)) < 0) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

static PyTypeObject TemplateMatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.TemplateMatcher",
    .tp_doc = "TemplateMatcher(templates, allowed, fallback): match(method, path) -> "
              "(route, params, None) | (None, None, allow) | (None, None, None).",
    .tp_basicsize = sizeof(TemplateMatcher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = matcher_new,
    .tp_dealloc = (destructor)matcher_dealloc,
    .tp_traverse = (traverseproc)matcher_traverse,
    .tp_clear = (inquiry)matcher_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(TemplateMatcher, vectorcall),
};

/* ---- Resolver ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *static_;    /* path -> {method: route}: the paths without parameters */
    PyObject *allowed;    /* allowed(table) -> the Allow header of a path */
    PyObject *templates;  /* templates(method, path): the answer for every other path */
} Resolver;

static PyObject *
resolver_vectorcall(Resolver *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "resolve(method, path), positionally");
        return NULL;
    }
    PyObject *method = args[0], *table = PyDict_GetItemWithError(self->static_, args[1]);  /* borrowed */
    if (table == NULL) {
        if (PyErr_Occurred())
            return NULL;
        PyObject *templates = Py_NewRef(self->templates);  /* held: the call may replace it */
        PyObject *answer = PyObject_Vectorcall(templates, args, 2, NULL);
        Py_DECREF(templates);
        return answer;
    }
    if (!PyDict_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "a path's table is a dict");
        return NULL;
    }
    PyObject *route = PyDict_GetItemWithError(table, method);  /* borrowed */
    if (route != NULL)
        return PyTuple_Pack(3, route, Py_None, Py_None);
    if (PyErr_Occurred())
        return NULL;
    Py_INCREF(table);  /* held while allowed() runs */
    PyObject *allow = PyObject_CallOneArg(self->allowed, table);
    Py_DECREF(table);
    if (allow == NULL)
        return NULL;
    PyObject *answer = no_route(allow);
    Py_DECREF(allow);
    return answer;
}

static int
resolver_set_templates(Resolver *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL || !PyCallable_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "templates is a callable");
        return -1;
    }
    Py_SETREF(self->templates, Py_NewRef(value));
    return 0;
}

static PyObject *
resolver_get_templates(Resolver *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->templates);
}

static PyGetSetDef resolver_getset[] = {
    {"templates", (getter)resolver_get_templates, (setter)resolver_set_templates,
     "templates(method, path): the answer for a path that is not in the static table", NULL},
    {NULL},
};

static int
resolver_clear(Resolver *self)
{
    Py_CLEAR(self->static_);
    Py_CLEAR(self->allowed);
    Py_CLEAR(self->templates);
    return 0;
}

static int
resolver_traverse(Resolver *self, visitproc visit, void *arg)
{
    Py_VISIT(self->static_);
    Py_VISIT(self->allowed);
    Py_VISIT(self->templates);
    return 0;
}

static void
resolver_dealloc(Resolver *self)
{
    PyObject_GC_UnTrack(self);
    resolver_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
resolver_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"static", "allowed", "templates", NULL};
    PyObject *static_, *allowed, *templates;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO:Resolver", keywords, &PyDict_Type, &static_, &allowed,
                                     &templates))
        return NULL;
    if (!PyCallable_Check(allowed) || !PyCallable_Check(templates)) {
        PyErr_SetString(PyExc_TypeError, "allowed and templates are callables");
        return NULL;
    }
    Resolver *self = (Resolver *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)resolver_vectorcall;
    self->static_ = Py_NewRef(static_);
    self->allowed = Py_NewRef(allowed);
    self->templates = Py_NewRef(templates);
    return (PyObject *)self;
}

static PyTypeObject ResolverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.Resolver",
    .tp_doc = "Resolver(static, allowed, templates): resolve(method, path) -> (route, params, None) | "
              "(None, None, allow) | (None, None, None), a path without parameters looked up in `static`.",
    .tp_basicsize = sizeof(Resolver),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = resolver_new,
    .tp_dealloc = (destructor)resolver_dealloc,
    .tp_traverse = (traverseproc)resolver_traverse,
    .tp_clear = (inquiry)resolver_clear,
    .tp_getset = resolver_getset,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Resolver, vectorcall),
};

int
catzilla_templates_init(PyObject *module)
{
    if (PyType_Ready(&TemplateMatcherType) < 0 || PyType_Ready(&ResolverType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Resolver", (PyObject *)&ResolverType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "TemplateMatcher", (PyObject *)&TemplateMatcherType);
}
