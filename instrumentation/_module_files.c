/*
 * The source files of the modules in sys.modules, read without taking a reference to any
 * module, for the process span's code files (instrumentation/_imported.py).
 *
 * A forked child (a DataLoader worker) shares its parent's memory copy-on-write: reading an
 * object costs nothing, but taking a reference writes its reference count, and the kernel then
 * copies the page it is on. Walking sys.modules in Python takes a reference to every module and
 * to its __file__: with torch's ~1,400 modules, ~10 ms of page copies at each worker's exit.
 * Here the walk uses borrowed references, and only the files the caller keeps get one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* "__file__", "__getattr__", ".py", "/" */
static PyObject *file_name, *getattr_name, *py_suffix, *slash;
/* "/./", "/../", "//": made once, not for each of the thousand or more modules of a walk. */
#define FOLDED 3
static PyObject *folded[FOLDED];

/* Whether `path`, absolute and ending in ".py", may be a file of the project once normalised:
 * it has a "/./", "/../" or "//" that os.path.abspath would fold, or it starts with `prefix`
 * and with none of `excluded` (a tuple of str). -1 on error. */
static int may_be_under(PyObject *path, PyObject *prefix, PyObject *excluded) {
    for (size_t i = 0; i < FOLDED; i++) {
        Py_ssize_t found = PyUnicode_Find(path, folded[i], 0, PY_SSIZE_T_MAX, 1);
        if (found != -1)
            return found == -2 ? -1 : 1;
    }
    int starts = PyUnicode_Tailmatch(path, prefix, 0, PY_SSIZE_T_MAX, -1);
    if (starts != 1)
        return starts;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(excluded); i++) {
        PyObject *other = PyTuple_GET_ITEM(excluded, i);
        if (!PyUnicode_Check(other)) {
            PyErr_SetString(PyExc_TypeError, "excluded must be a tuple of str");
            return -1;
        }
        int under = PyUnicode_Tailmatch(path, other, 0, PY_SSIZE_T_MAX, -1);
        if (under != 0)
            return under < 0 ? -1 : 0;
    }
    return 1;
}

/* module_files(modules, prefix, excluded) -> (files, others)
 * files: the __file__ (a str ending in ".py") of each object of `modules` that is exactly a
 *   module with __file__ in its namespace, unless it is absolute and `may_be_under` says no;
 * others: the objects whose __file__ only getattr() can tell: not exactly a module, or a
 *   module without __file__ in its namespace but with a module-level __getattr__. */
static PyObject *module_files(PyObject *self, PyObject *args) {
    PyObject *modules, *prefix, *excluded;
    if (!PyArg_ParseTuple(args, "O!UO!", &PyDict_Type, &modules, &prefix, &PyTuple_Type, &excluded))
        return NULL;
    PyObject *files = PyList_New(0), *others = PyList_New(0);
    if (files == NULL || others == NULL)
        goto fail;
    Py_ssize_t position = 0;
    PyObject *key, *module;
    /* Nothing below imports or calls into Python (the look-ups are of str keys): sys.modules
     * cannot change while it is walked. */
    while (PyDict_Next(modules, &position, &key, &module)) {
        if (!PyModule_CheckExact(module)) {
            if (PyList_Append(others, module) < 0)
                goto fail;
            continue;
        }
        PyObject *namespace = PyModule_GetDict(module); /* borrowed, as is all below */
        PyObject *file = PyDict_GetItemWithError(namespace, file_name);
        if (file == NULL) {
            if (PyErr_Occurred())
                goto fail;
            PyObject *getattr = PyDict_GetItemWithError(namespace, getattr_name);
            if (getattr == NULL && PyErr_Occurred())
                goto fail;
            if (getattr != NULL && PyList_Append(others, module) < 0)
                goto fail;
            continue;
        }
        if (!PyUnicode_Check(file))
            continue;
        int python = PyUnicode_Tailmatch(file, py_suffix, 0, PY_SSIZE_T_MAX, 1);
        if (python < 0)
            goto fail;
        if (!python)
            continue;
        int absolute = PyUnicode_Tailmatch(file, slash, 0, PY_SSIZE_T_MAX, -1);
        if (absolute < 0)
            goto fail;
        if (absolute) {
            int under = may_be_under(file, prefix, excluded);
            if (under < 0)
                goto fail;
            if (!under)
                continue;
        }
        if (PyList_Append(files, file) < 0)
            goto fail;
    }
    return Py_BuildValue("(NN)", files, others);
fail:
    Py_XDECREF(files);
    Py_XDECREF(others);
    return NULL;
}

static PyMethodDef methods[] = {
    {"module_files", module_files, METH_VARARGS,
     "module_files(modules, prefix, excluded) -> (files, others): see _module_files.c."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, "_module_files", NULL, -1, methods};

PyMODINIT_FUNC PyInit__module_files(void) {
    file_name = PyUnicode_InternFromString("__file__");
    getattr_name = PyUnicode_InternFromString("__getattr__");
    py_suffix = PyUnicode_InternFromString(".py");
    slash = PyUnicode_InternFromString("/");
    folded[0] = PyUnicode_InternFromString("/./");
    folded[1] = PyUnicode_InternFromString("/../");
    folded[2] = PyUnicode_InternFromString("//");
    if (file_name == NULL || getattr_name == NULL || py_suffix == NULL || slash == NULL ||
        folded[0] == NULL || folded[1] == NULL || folded[2] == NULL)
        return NULL;
    return PyModule_Create(&definition);
}
