#include "native.h"

int
catzilla_headers_init(PyObject *module)
{
    return 0;
}
