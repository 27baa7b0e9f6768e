#include "native.h"

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "catzilla._native",
    .m_doc = "C parts of Catzilla's request path: header parsing and shared-memory stats.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL)
        return NULL;
    if (catzilla_request_init(module) < 0)
        goto error;
    if (catzilla_headers_init(module) < 0)
        goto error;
    if (catzilla_stats_init(module) < 0)
        goto error;
    if (catzilla_exchange_init(module) < 0)
        goto error;
    if (catzilla_responses_init(module) < 0)
        goto error;
    if (catzilla_binding_init(module) < 0)
        goto error;
    if (catzilla_templates_init(module) < 0)
        goto error;
    if (catzilla_accesslog_init(module) < 0)
        goto error;
    if (catzilla_inline_init(module) < 0)
        goto error;
    if (catzilla_connection_init(module) < 0)
        goto error;
    if (catzilla_chain_init(module) < 0)
        goto error;
    if (catzilla_fields_init(module) < 0)
        goto error;
    if (catzilla_cors_init(module) < 0)
        goto error;
    if (catzilla_pool_init(module) < 0)
        goto error;
    if (catzilla_jsonresponse_init(module) < 0)
        goto error;
    if (catzilla_batch_init(module) < 0)
        goto error;
    return module;
error:
    Py_DECREF(module);
    return NULL;
}
