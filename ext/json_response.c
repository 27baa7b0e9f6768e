/* JSONResponse.__init__ (and the usual case of its encode) in C.
 *
 * A handler's `JSONResponse({...})` runs once per JSON request. Written in Python, the call
 * went from the type's tp_init into a new interpreter frame; as a method of the C base class
 * of Response (ResponseBase, an empty object), tp_init calls it directly. It does what the
 * Python constructor did, in the same order (the order attributes are first set in decides
 * the instance's shared key layout):
 *
 *     self.status_code = status_code
 *     if media_type is not None: self.media_type, self.exact_type = media_type, False
 *     elif content_type is not None: self.media_type, self.exact_type = content_type, True
 *     if body is not None and content is None: content = body
 *     if type(self) is not JSONResponse and self._own_render:
 *         self.body = self.render(content)
 *     else:
 *         try: self.body = orjson.dumps(content, default=_to_builtins, option=OPT_NON_STR_KEYS)
 *         except orjson.JSONEncodeError: self.body = _dumps_slowly(content)
 *     self.raw_headers = raw_pairs(headers) if headers else []
 *
 * tests/test_json_response_native.py checks it against that Python. JSONResponse.encode,
 * a method of the same base, encodes the usual response (no header pairs) in C as well and
 * hands any other to catzilla.responses._encode_json.
 */
#include "native.h"

enum { CONTENT, STATUS_CODE, HEADERS, MEDIA_TYPE, CONTENT_TYPE, BODY, NPARAMS };
#define NPOSITIONAL 4 /* content, status_code, headers, media_type; the rest keyword-only */

static const char *const PARAM_NAMES[NPARAMS] = {"content", "status_code", "headers", "media_type",
                                                 "content_type", "body"};

typedef struct {
    PyObject *json_type;    /* catzilla.responses.JSONResponse */
    PyObject *dumps;        /* orjson.dumps */
    PyObject *dumps_kwargs; /* ("default", "option") */
    PyObject *to_builtins;  /* its default= */
    PyObject *option;       /* orjson.OPT_NON_STR_KEYS */
    PyObject *encode_error; /* orjson.JSONEncodeError */
    PyObject *dumps_slowly; /* catzilla.responses._dumps_slowly */
    PyObject *raw_pairs;    /* catzilla.response_headers.raw_pairs */
    PyObject *encode_json;  /* catzilla.responses._encode_json: encode's other cases */
    PyObject *str_common, *str_head_only;
    PyObject *status_200;
    PyObject *names[NPARAMS];
    PyObject *str_status_code, *str_media_type, *str_exact_type, *str_body, *str_raw_headers;
    PyObject *str_own_render, *str_render;
} JsonState;

static JsonState jstate;

/* The arguments as Python binds them to the signature above; borrowed references. */
static int
bind_arguments(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject *values[NPARAMS])
{
    if (nargs > NPOSITIONAL) {
        PyErr_Format(PyExc_TypeError, "JSONResponse() takes at most %d positional arguments (%zd given)",
                     NPOSITIONAL, nargs);
        return -1;
    }
    for (int i = 0; i < NPARAMS; i++)
        values[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int i = 0; i < NPARAMS && found < 0; i++) {
            if (name == jstate.names[i])
                found = i;
        }
        for (int i = 0; i < NPARAMS && found < 0; i++) {
            int same = PyUnicode_Compare(name, jstate.names[i]);
            if (same == -1 && PyErr_Occurred())
                return -1;
            if (same == 0)
                found = i;
        }
        if (found < 0) {
            PyErr_Format(PyExc_TypeError, "JSONResponse() got an unexpected keyword argument '%S'", name);
            return -1;
        }
        if (values[found] != NULL) {
            PyErr_Format(PyExc_TypeError, "JSONResponse() got multiple values for argument '%s'",
                         PARAM_NAMES[found]);
            return -1;
        }
        values[found] = args[nargs + k];
    }
    if (values[STATUS_CODE] == NULL)
        values[STATUS_CODE] = jstate.status_200;
    for (int i = 0; i < NPARAMS; i++) {
        if (values[i] == NULL)
            values[i] = Py_None;
    }
    return 0;
}

/* The body: the subclass's own render(), or orjson (the standard library's encoder for
 * what orjson refuses but JSON can hold). */
static PyObject *
render(PyObject *self, PyObject *content)
{
    if (Py_TYPE(self) != (PyTypeObject *)jstate.json_type) {
        PyObject *own = PyObject_GetAttr(self, jstate.str_own_render);
        if (own == NULL)
            return NULL;
        int overridden = PyObject_IsTrue(own);
        Py_DECREF(own);
        if (overridden < 0)
            return NULL;
        if (overridden)
            return PyObject_CallMethodOneArg(self, jstate.str_render, content);
    }
    PyObject *call[3] = {content, jstate.to_builtins, jstate.option};
    PyObject *body = PyObject_Vectorcall(jstate.dumps, call, 1, jstate.dumps_kwargs);
    if (body == NULL && PyErr_ExceptionMatches(jstate.encode_error)) {
        PyErr_Clear();
        body = PyObject_CallOneArg(jstate.dumps_slowly, content);
    }
    return body;
}

static PyObject *
json_init(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    PyObject *values[NPARAMS];
    PyObject *body = NULL, *raw = NULL, *result = NULL;

    if (jstate.json_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "catzilla.responses has not registered JSONResponse");
        return NULL;
    }
    if (bind_arguments(args, PyVectorcall_NARGS(nargsf), kwnames, values) < 0)
        return NULL;
    if (PyObject_SetAttr(self, jstate.str_status_code, values[STATUS_CODE]) < 0)
        return NULL;
    if (values[MEDIA_TYPE] != Py_None) {
        if (PyObject_SetAttr(self, jstate.str_media_type, values[MEDIA_TYPE]) < 0
                || PyObject_SetAttr(self, jstate.str_exact_type, Py_False) < 0)
            return NULL;
    }
    else if (values[CONTENT_TYPE] != Py_None) {
        if (PyObject_SetAttr(self, jstate.str_media_type, values[CONTENT_TYPE]) < 0
                || PyObject_SetAttr(self, jstate.str_exact_type, Py_True) < 0)
            return NULL;
    }
    PyObject *content = values[CONTENT];
    if (values[BODY] != Py_None && content == Py_None)
        content = values[BODY];
    body = render(self, content);
    if (body == NULL || PyObject_SetAttr(self, jstate.str_body, body) < 0)
        goto cleanup;
    int headers = PyObject_IsTrue(values[HEADERS]);
    if (headers < 0)
        goto cleanup;
    raw = headers ? PyObject_CallOneArg(jstate.raw_pairs, values[HEADERS]) : PyList_New(0);
    if (raw == NULL || PyObject_SetAttr(self, jstate.str_raw_headers, raw) < 0)
        goto cleanup;
    result = Py_NewRef(Py_None);
cleanup:
    Py_XDECREF(body);
    Py_XDECREF(raw);
    return result;
}

/* JSONResponse.encode(common, head_only=False): the usual response (no header pairs, the
 * JSON media type) encoded here (ext/inline.c), any other by _encode_json. */
static PyObject *
json_encode(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *values[2] = {NULL, Py_False};
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "encode() takes at most 2 arguments (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        values[i] = args[i];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int index = PyUnicode_Compare(name, jstate.str_common) == 0 ? 0
                    : PyUnicode_Compare(name, jstate.str_head_only) == 0 ? 1 : -1;
        if (index < 0 || index < nargs) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "encode() got an unexpected or repeated argument '%S'", name);
            return NULL;
        }
        values[index] = args[nargs + k];
    }
    if (values[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "encode() missing required argument 'common'");
        return NULL;
    }
    int head_only = PyObject_IsTrue(values[1]);
    if (head_only < 0)
        return NULL;
    PyObject *data = catzilla_encode_plain_json(self, values[0], head_only);
    if (data != NULL || PyErr_Occurred())
        return data;
    PyObject *call[3] = {self, values[0], values[1]};
    return PyObject_Vectorcall(jstate.encode_json, call, 3, NULL);
}

/* register_json_response(JSONResponse, dumps, default, option, encode_error, dumps_slowly,
 * raw_pairs, encode_json): what json_init and json_encode use, from catzilla.responses. */
static PyObject *
register_json_response(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyType_Check(args[0]) || !PyCallable_Check(args[1]) || !PyCallable_Check(args[5])
            || !PyCallable_Check(args[6]) || !PyCallable_Check(args[7])
            || !PyExceptionClass_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "register_json_response(JSONResponse, dumps, default, option, "
                                         "encode_error, dumps_slowly, raw_pairs, encode_json)");
        return NULL;
    }
    PyObject **slots[8] = {&jstate.json_type, &jstate.dumps, &jstate.to_builtins, &jstate.option,
                           &jstate.encode_error, &jstate.dumps_slowly, &jstate.raw_pairs, &jstate.encode_json};
    for (int i = 0; i < 8; i++)
        Py_XSETREF(*slots[i], Py_NewRef(args[i]));
    Py_RETURN_NONE;
}

static PyMethodDef base_methods[] = {
    {"_json_init", (PyCFunction)(void (*)(void))json_init, METH_FASTCALL | METH_KEYWORDS,
     "_json_init($self, /, content=None, status_code=200, headers=None, media_type=None, *, "
     "content_type=None, body=None)\n--\n\nJSONResponse.__init__: the content rendered as JSON."},
    {"_json_encode", (PyCFunction)(void (*)(void))json_encode, METH_FASTCALL | METH_KEYWORDS,
     "_json_encode($self, /, common, head_only=False)\n--\n\nJSONResponse.encode: status line, "
     "`common` (server, date, connection), own headers, framing, body."},
    {NULL},
};

static PyTypeObject ResponseBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._native.ResponseBase",
    .tp_doc = "The C base of catzilla.responses.Response: holds JSONResponse's constructor.",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_methods = base_methods,
};

static PyMethodDef json_functions[] = {
    {"register_json_response", (PyCFunction)(void (*)(void))register_json_response, METH_FASTCALL,
     "register_json_response(JSONResponse, dumps, default, option, encode_error, dumps_slowly, "
     "raw_pairs)"},
    {NULL},
};

int
catzilla_json_response_init(PyObject *module)
{
    for (int i = 0; i < NPARAMS; i++) {
        if (catzilla_intern(&jstate.names[i], PARAM_NAMES[i]) < 0)
            return -1;
    }
    struct { PyObject **slot; const char *text; } names[] = {
        {&jstate.str_status_code, "status_code"}, {&jstate.str_media_type, "media_type"},
        {&jstate.str_exact_type, "exact_type"}, {&jstate.str_body, "body"},
        {&jstate.str_raw_headers, "raw_headers"}, {&jstate.str_own_render, "_own_render"},
        {&jstate.str_render, "render"}, {&jstate.str_common, "common"}, {&jstate.str_head_only, "head_only"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (catzilla_intern(names[i].slot, names[i].text) < 0)
            return -1;
    }
    jstate.status_200 = PyLong_FromLong(200);
    /* Interned: orjson tells its keywords apart by identity, as compiled code passes them. */
    PyObject *default_name = PyUnicode_InternFromString("default");
    PyObject *option_name = PyUnicode_InternFromString("option");
    if (default_name != NULL && option_name != NULL)
        jstate.dumps_kwargs = PyTuple_Pack(2, default_name, option_name);
    Py_XDECREF(default_name);
    Py_XDECREF(option_name);
    if (jstate.status_200 == NULL || jstate.dumps_kwargs == NULL)
        return -1;
    if (PyType_Ready(&ResponseBaseType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "ResponseBase", (PyObject *)&ResponseBaseType) < 0)
        return -1;
    return PyModule_AddFunctions(module, json_functions);
}
