/* A JSON response made without a Python frame: JSONResponse.__init__ and to_response().
 *
 * Every JSON request makes one JSONResponse, whether the handler builds it or returns a dict
 * that to_response() turns into one. In Python that is two frames per request (to_response's
 * and __init__'s), and the interpreter code those frames touch is a good part of what a
 * request keeps in the instruction cache. The functions here do the same steps in C:
 *
 *     json_init(self, content=None, status_code=200, headers=None, media_type=None, *,
 *               content_type=None, body=None)   -- JSONResponse.__init__, step for step
 *     to_response(result)                        -- catzilla.responses.to_response
 *
 * catzilla.responses keeps the Python versions as the references that
 * tests/test_jsonresponse_native.py compares these with, and installs these in their place
 * (register_json_response()).
 */
#include "native.h"

enum { ARG_CONTENT, ARG_STATUS_CODE, ARG_HEADERS, ARG_MEDIA_TYPE, ARG_CONTENT_TYPE, ARG_BODY, N_ARGS };
#define N_POSITIONAL 4 /* content, status_code, headers, media_type; the rest keyword-only */

typedef struct {
    PyObject *json_type;      /* catzilla.responses.JSONResponse */
    PyObject *response_type;  /* catzilla.responses.Response */
    PyObject *text_type;      /* catzilla.responses.PlainTextResponse */
    PyObject *dumps;          /* orjson.dumps */
    PyObject *to_builtins;    /* catzilla.responses._to_builtins, orjson's default= */
    PyObject *option;         /* orjson.OPT_NON_STR_KEYS */
    PyObject *encode_error;   /* orjson.JSONEncodeError */
    PyObject *dumps_slowly;   /* catzilla.responses._dumps_slowly */
    PyObject *raw_pairs;      /* catzilla.response_headers.raw_pairs */
    PyObject *status_200;
    PyObject *dumps_kwnames;  /* ("default", "option") */
    PyObject *octet_kwnames;  /* ("media_type",) */
    PyObject *octet_stream;   /* "application/octet-stream" */
    PyObject *names[N_ARGS];  /* the parameters' names, interned */
    PyObject *str_status_code, *str_media_type, *str_exact_type, *str_body, *str_raw_headers;
    PyObject *str_own_render, *str_render;
} JsonState;

static JsonState jstate;

static int
bind_arguments(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject *values[N_ARGS])
{
    if (nargs > N_POSITIONAL) {
        PyErr_Format(PyExc_TypeError, "JSONResponse.__init__() takes from 1 to %d positional arguments "
                     "but %zd were given", N_POSITIONAL + 1, nargs + 1);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        values[i] = args[i];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int which = -1;
        for (int j = 0; j < N_ARGS && which < 0; j++) {
            if (name == jstate.names[j])
                which = j;
        }
        for (int j = 0; j < N_ARGS && which < 0; j++) {
            int same = PyUnicode_Compare(name, jstate.names[j]) == 0;
            if (PyErr_Occurred())
                return -1;
            if (same)
                which = j;
        }
        if (which < 0) {
            PyErr_Format(PyExc_TypeError,
                         "JSONResponse.__init__() got an unexpected keyword argument '%U'", name);
            return -1;
        }
        if (values[which] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "JSONResponse.__init__() got multiple values for argument '%U'", name);
            return -1;
        }
        values[which] = args[nargs + k];
    }
    return 0;
}

/* orjson.dumps(content, default=_to_builtins, option=OPT_NON_STR_KEYS), and what orjson
 * refuses but JSON can hold through _dumps_slowly(content). */
static PyObject *
dump(PyObject *content)
{
    PyObject *call[3] = {content, jstate.to_builtins, jstate.option};
    PyObject *body = PyObject_Vectorcall(jstate.dumps, call, 1, jstate.dumps_kwnames);
    if (body == NULL && PyErr_ExceptionMatches(jstate.encode_error)) {
        /* `except orjson.JSONEncodeError: _dumps_slowly(content)`: orjson's refusal is the
         * exception being handled meanwhile, so what the fallback raises chains to it */
        PyObject *type, *value, *traceback, *was_type, *was_value, *was_traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        PyErr_GetExcInfo(&was_type, &was_value, &was_traceback);
        PyErr_SetExcInfo(type, value, traceback); /* (steals the three) */
        body = PyObject_CallOneArg(jstate.dumps_slowly, content);
        PyErr_SetExcInfo(was_type, was_value, was_traceback);
    }
    return body;
}

/* The body as JSONResponse.__init__ makes it: a subclass's own render(), or orjson. */
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
    return dump(content);
}

static PyObject *
json_init(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    PyObject *values[N_ARGS] = {NULL};
    if (bind_arguments(args, PyVectorcall_NARGS(nargsf), kwnames, values) < 0)
        return NULL;
    for (int i = 0; i < N_ARGS; i++) {
        if (values[i] == NULL)
            values[i] = i == ARG_STATUS_CODE ? jstate.status_200 : Py_None;
    }
    /* the attributes in __init__'s order: instances then share one key table */
    if (PyObject_SetAttr(self, jstate.str_status_code, values[ARG_STATUS_CODE]) < 0)
        return NULL;
    PyObject *media = values[ARG_MEDIA_TYPE] != Py_None ? values[ARG_MEDIA_TYPE] : values[ARG_CONTENT_TYPE];
    if (media != Py_None) {
        if (PyObject_SetAttr(self, jstate.str_media_type, media) < 0)
            return NULL;
        PyObject *exact = values[ARG_MEDIA_TYPE] != Py_None ? Py_False : Py_True;
        if (PyObject_SetAttr(self, jstate.str_exact_type, exact) < 0)
            return NULL;
    }
    PyObject *content = values[ARG_CONTENT];
    if (values[ARG_BODY] != Py_None && content == Py_None)
        content = values[ARG_BODY];
    PyObject *body = render(self, content);
    if (body == NULL)
        return NULL;
    int failed = PyObject_SetAttr(self, jstate.str_body, body);
    Py_DECREF(body);
    if (failed < 0)
        return NULL;
    int has_headers = PyObject_IsTrue(values[ARG_HEADERS]);
    if (has_headers < 0)
        return NULL;
    PyObject *raw = has_headers ? PyObject_CallOneArg(jstate.raw_pairs, values[ARG_HEADERS]) : PyList_New(0);
    if (raw == NULL)
        return NULL;
    failed = PyObject_SetAttr(self, jstate.str_raw_headers, raw);
    Py_DECREF(raw);
    if (failed < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* to_response(result): a handler's return value as a response (DESIGN.md section 3). */
static PyObject *
to_response(PyObject *Py_UNUSED(module), PyObject *result)
{
    if (PyObject_TypeCheck(result, (PyTypeObject *)jstate.response_type))
        return Py_NewRef(result);
    if (!PyDict_CheckExact(result) && !PyList_CheckExact(result) && result != Py_None) {
        /* isinstance() whole: a __class__ or __instancecheck__ may say it is a Response */
        int response = PyObject_IsInstance(result, jstate.response_type);
        if (response != 0)
            return response < 0 ? NULL : Py_NewRef(result);
    }
    if (PyUnicode_Check(result))
        return PyObject_CallOneArg(jstate.text_type, result);
    if (PyBytes_Check(result) || PyByteArray_Check(result) || PyMemoryView_Check(result)) {
        PyObject *call[2] = {result, jstate.octet_stream};
        return PyObject_Vectorcall(jstate.response_type, call, 1, jstate.octet_kwnames);
    }
    return PyObject_CallOneArg(jstate.json_type, result); /* dict, list, None, Structs... */
}

static PyMethodDef init_def = {
    "__init__", (PyCFunction)(void (*)(void))json_init, METH_FASTCALL | METH_KEYWORDS,
    "__init__($self, /, content=None, status_code=200, headers=None, media_type=None, *, "
    "content_type=None, body=None)\n--\n\n"
    "The content encoded as JSON (orjson; msgspec for Structs and sets), with the status, "
    "header pairs and media type given."
};

static PyMethodDef to_response_def = {
    "to_response", (PyCFunction)to_response, METH_O,
    "to_response(result) -> Response: a handler's return value as a response."
};

/* register_json_response(JSONResponse, Response, PlainTextResponse, dumps, to_builtins, option,
 * encode_error, dumps_slowly, raw_pairs) -> (__init__, to_response): called once by
 * catzilla.responses, which installs the two. */
static PyObject *
register_json_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2])
            || !PyExceptionClass_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "register_json_response(JSONResponse, Response, PlainTextResponse, "
                        "dumps, to_builtins, option, encode_error, dumps_slowly, raw_pairs)");
        return NULL;
    }
    PyObject **slots[] = {&jstate.json_type, &jstate.response_type, &jstate.text_type, &jstate.dumps,
                          &jstate.to_builtins, &jstate.option, &jstate.encode_error, &jstate.dumps_slowly,
                          &jstate.raw_pairs};
    for (Py_ssize_t i = 0; i < nargs; i++)
        Py_XSETREF(*slots[i], Py_NewRef(args[i]));
    PyObject *init = PyDescr_NewMethod((PyTypeObject *)args[0], &init_def);
    PyObject *name = PyModule_GetNameObject(module);
    PyObject *convert = name == NULL ? NULL : PyCFunction_NewEx(&to_response_def, NULL, name);
    Py_XDECREF(name);
    PyObject *result = NULL;
    if (init != NULL && convert != NULL)
        result = PyTuple_Pack(2, init, convert);
    Py_XDECREF(init);
    Py_XDECREF(convert);
    return result;
}

static PyMethodDef jsonresponse_functions[] = {
    {"register_json_response", (PyCFunction)(void (*)(void))register_json_response, METH_FASTCALL,
     "register_json_response(JSONResponse, Response, PlainTextResponse, dumps, to_builtins, option, "
     "encode_error, dumps_slowly, raw_pairs) -> (__init__, to_response)"},
    {NULL},
};

int
catzilla_jsonresponse_init(PyObject *module)
{
    static const char *const parameters[N_ARGS] = {"content", "status_code", "headers", "media_type",
                                                    "content_type", "body"};
    for (int i = 0; i < N_ARGS; i++) {
        if (catzilla_intern(&jstate.names[i], parameters[i]) < 0)
            return -1;
    }
    struct { PyObject **slot; const char *text; } names[] = {
        {&jstate.str_status_code, "status_code"}, {&jstate.str_media_type, "media_type"},
        {&jstate.str_exact_type, "exact_type"}, {&jstate.str_body, "body"},
        {&jstate.str_raw_headers, "raw_headers"}, {&jstate.str_own_render, "_own_render"},
        {&jstate.str_render, "render"}, {&jstate.octet_stream, "application/octet-stream"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (catzilla_intern(names[i].slot, names[i].text) < 0)
            return -1;
    }
    jstate.status_200 = PyLong_FromLong(200);
    PyObject *default_name = PyUnicode_InternFromString("default");
    PyObject *option_name = PyUnicode_InternFromString("option");
    if (default_name != NULL && option_name != NULL)
        jstate.dumps_kwnames = PyTuple_Pack(2, default_name, option_name);
    Py_XDECREF(default_name);
    Py_XDECREF(option_name);
    jstate.octet_kwnames = PyTuple_Pack(1, jstate.names[ARG_MEDIA_TYPE]);
    if (jstate.status_200 == NULL || jstate.dumps_kwnames == NULL || jstate.octet_kwnames == NULL)
        return -1;
    return PyModule_AddFunctions(module, jsonresponse_functions);
}
