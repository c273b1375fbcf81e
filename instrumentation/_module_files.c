/*
 * The source files of the modules in sys.modules, read without taking a reference to any
 * module, for the process span's code files (instrumentation/_imported.py).
 *
 * A forked child (a DataLoader worker) shares its parent's memory copy-on-write: reading an
 * object costs nothing, but taking a reference writes its reference count, and the kernel then
 * copies the page it is on. Walking sys.modules in Python takes a reference to every module and
 * to its __file__: with torch's ~1,400 modules, ~10 ms of page copies at each worker's exit.
 * Here the walk uses borrowed references, and only the files the caller keeps get one.
 *
 * Even so, reading ~1,400 modules and their namespaces, scattered over memory, costs ~1.5-2.5
 * ms in a fresh fork. A walk made before the fork (with `keep`) lets the child check that
 * sys.modules still begins with the entries that walk saw, by comparing pointers in two
 * contiguous arrays, and read only the modules imported since.
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

/* Append the file of `module` to `files`, or `module` to `others` (see module_files). */
static int sort_module(PyObject *module, PyObject *prefix, PyObject *excluded, PyObject *files,
                       PyObject *others) {
    if (!PyModule_CheckExact(module))
        return PyList_Append(others, module);
    PyObject *namespace = PyModule_GetDict(module); /* borrowed, as is all below */
    PyObject *file = PyDict_GetItemWithError(namespace, file_name);
    if (file == NULL) {
        if (PyErr_Occurred())
            return -1;
        PyObject *getattr = PyDict_GetItemWithError(namespace, getattr_name);
        if (getattr == NULL)
            return PyErr_Occurred() ? -1 : 0;
        return PyList_Append(others, module);
    }
    if (!PyUnicode_Check(file))
        return 0;
    int python = PyUnicode_Tailmatch(file, py_suffix, 0, PY_SSIZE_T_MAX, 1);
    if (python <= 0)
        return python;
    int absolute = PyUnicode_Tailmatch(file, slash, 0, PY_SSIZE_T_MAX, -1);
    if (absolute < 0)
        return -1;
    if (absolute) {
        int under = may_be_under(file, prefix, excluded);
        if (under <= 0)
            return under;
    }
    return PyList_Append(files, file);
}

/* module_files(modules, prefix, excluded, known_keys, known_values, keep)
 *   -> (files, others, keys, values) | None
 * Of the entries of `modules` after its first len(known_keys), which must be exactly those of
 * known_keys and known_values (lists, in order; else None):
 * files: the __file__ (a str ending in ".py") of each object that is exactly a module with
 *   __file__ in its namespace, unless it is absolute and `may_be_under` says no;
 * others: the objects whose __file__ only getattr() can tell: not exactly a module, or a
 *   module without __file__ in its namespace but with a module-level __getattr__;
 * keys, values: with `keep`, those entries (the next call's known ones), else None. Taking a
 *   reference to each is what the walk otherwise avoids, so a forked child does not keep.
 * The known lists hold their objects: none can have been freed and its address reused, so
 * the same pointers are the same objects. */
static PyObject *module_files(PyObject *self, PyObject *args) {
    PyObject *modules, *prefix, *excluded, *known_keys, *known_values;
    int keep;
    if (!PyArg_ParseTuple(args, "O!UO!O!O!p", &PyDict_Type, &modules, &prefix, &PyTuple_Type,
                          &excluded, &PyList_Type, &known_keys, &PyList_Type, &known_values,
                          &keep))
        return NULL;
    Py_ssize_t known = PyList_GET_SIZE(known_keys);
    if (PyList_GET_SIZE(known_values) != known) {
        PyErr_SetString(PyExc_ValueError, "known_keys and known_values differ in length");
        return NULL;
    }
    PyObject *files = PyList_New(0), *others = PyList_New(0);
    PyObject *keys = keep ? PyList_New(0) : Py_NewRef(Py_None);
    PyObject *values = keep ? PyList_New(0) : Py_NewRef(Py_None);
    if (files == NULL || others == NULL || keys == NULL || values == NULL)
        goto fail;
    Py_ssize_t position = 0, index = 0;
    PyObject *key, *module;
    /* Nothing below imports or calls into Python (the look-ups are of str keys; no object the
     * collector tracks is made in the loop): sys.modules cannot change while it is walked. */
    while (PyDict_Next(modules, &position, &key, &module)) {
        if (index < known) {
            if (key != PyList_GET_ITEM(known_keys, index) ||
                module != PyList_GET_ITEM(known_values, index))
                goto changed;
            index++;
            continue;
        }
        if (keep && (PyList_Append(keys, key) < 0 || PyList_Append(values, module) < 0))
            goto fail;
        if (sort_module(module, prefix, excluded, files, others) < 0)
            goto fail;
    }
    if (index < known)
        goto changed;
    return Py_BuildValue("(NNNN)", files, others, keys, values);
changed:
    Py_DECREF(files);
    Py_DECREF(others);
    Py_DECREF(keys);
    Py_DECREF(values);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(files);
    Py_XDECREF(others);
    Py_XDECREF(keys);
    Py_XDECREF(values);
    return NULL;
}

static PyMethodDef methods[] = {
    {"module_files", module_files, METH_VARARGS,
     "module_files(modules, prefix, excluded, known_keys, known_values, keep) -> "
     "(files, others, keys, values) | None: see _module_files.c."},
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
