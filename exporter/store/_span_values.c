/*
 * The attribute maps of the ingest's C converter (_span_rows.c): an OTLP KeyValue list as
 * rows.attributes_map makes it, its keys sorted and each value the text pdata's AsString
 * gives. Strings, canonical ints, bools, and arrays of only plain strings or only canonical
 * ints (a batched span's URIs, digests and sizes: most of the spool's bytes) are written
 * here; any other value by rows.as_string, which Python's path calls for it too.
 */
#include "_span_rows.h"
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_SORTED_PAIRS 256 /* more attributes than this: Python's path sorts them */

/* Whether `text` is an int as str(int(x)) writes it: no sign but a minus, no leading zero,
 * no "-0", and digits only; and short (int() refuses thousands of digits). */
static int canonical_int(PyObject *text) {
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text) ||
        PyUnicode_GET_LENGTH(text) > 20)
        return 0;
    const char *at = (const char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), i = at[0] == '-';
    if (size == i || (at[i] == '0' && (size > i + 1 || i)))
        return 0;
    for (; i < size; i++)
        if (at[i] < '0' || at[i] > '9')
            return 0;
    return 1;
}

/* Whether the ASCII `text` is written into JSON as it is, and by Go's json.Marshal too:
 * nothing JSON escapes (a control character, '"', '\\'), nothing Go adds ('<', '>', '&'),
 * no DEL. As the spool's URIs and digests are: most of its bytes, so 16 a step where SSE2 is
 * (the byte loop was ~60 % of attributes_map's time). */
static int plain_json(PyObject *text) {
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text))
        return 0;
    const unsigned char *at = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), i = 0;
#if defined(__SSE2__)
    /* Signed compares are right here: ASCII bytes are all below 0x80. */
    const __m128i space = _mm_set1_epi8(0x20);
    __m128i found = _mm_setzero_si128();
    for (; i + 16 <= size; i += 16) {
        __m128i block = _mm_loadu_si128((const __m128i *)(at + i));
        found = _mm_or_si128(found, _mm_cmplt_epi8(block, space));
        for (int c = 0; c < 6; c++)
            found = _mm_or_si128(found, _mm_cmpeq_epi8(block, _mm_set1_epi8("\"\\<>&\x7f"[c])));
    }
    if (_mm_movemask_epi8(found))
        return 0;
#endif
    for (; i < size; i++)
        if (at[i] < 0x20 || at[i] == '"' || at[i] == '\\' || at[i] == '<' || at[i] == '>' ||
            at[i] == '&' || at[i] == 0x7f)
            return 0;
    return 1;
}

/* An arrayValue of only plain strings or only canonical ints (as the spool's batched spans
 * hold: URIs, digests, sizes) as rows._json writes it: `["a","b"]`, `[1,2]`. A new
 * reference; NULL without an error for any other array, which rows.as_string writes. */
static PyObject *array_text(PyObject *array) {
    PyObject *items = PyDict_CheckExact(array) ? get_list(array, s_values) : NULL;
    if (items == NULL)
        return NULL;
    Py_ssize_t count = items == Py_None ? 0 : PyList_GET_SIZE(items), size = 2;
    int strings = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i), *kind, *raw;
        Py_ssize_t at = 0;
        if (!PyDict_CheckExact(item) || PyDict_GET_SIZE(item) != 1)
            return NULL;
        PyDict_Next(item, &at, &kind, &raw);
        if (!PyUnicode_CheckExact(kind))
            return NULL;
        int string = kind == s_stringValue || PyUnicode_Compare(kind, s_stringValue) == 0;
        if (i == 0)
            strings = string;
        if (string != strings ||
            !(string ? plain_json(raw)
                     : (kind == s_intValue || PyUnicode_Compare(kind, s_intValue) == 0) &&
                           canonical_int(raw)))
            return NULL;
        size += PyUnicode_GET_LENGTH(raw) + (i > 0) + 2 * strings;
    }
    PyObject *text = PyUnicode_New(size, 127);
    if (text == NULL)
        return NULL;
    char *out = (char *)PyUnicode_1BYTE_DATA(text);
    *out++ = '[';
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *raw = PyDict_GetItem(PyList_GET_ITEM(items, i),
                                       strings ? s_stringValue : s_intValue);
        Py_ssize_t length = PyUnicode_GET_LENGTH(raw);
        if (i > 0)
            *out++ = ',';
        if (strings)
            *out++ = '"';
        memcpy(out, PyUnicode_1BYTE_DATA(raw), length);
        out += length;
        if (strings)
            *out++ = '"';
    }
    *out = ']';
    return text;
}

/* An attribute's AnyValue as rows.as_string gives it (a new reference; NULL: decline). */
static PyObject *value_text(PyObject *value, const Names *names) {
    PyObject *string = PyDict_GetItemWithError(value, s_stringValue);
    if (string != NULL)
        return PyUnicode_CheckExact(string) ? Py_NewRef(string) : NULL;
    if (PyErr_Occurred())
        return NULL;
    if (PyDict_GET_SIZE(value) == 1) {
        Py_ssize_t at = 0;
        PyObject *kind, *raw;
        PyDict_Next(value, &at, &kind, &raw);
        if (kind == s_intValue || (PyUnicode_CheckExact(kind) &&
                                   PyUnicode_Compare(kind, s_intValue) == 0)) {
            if (canonical_int(raw))
                return Py_NewRef(raw);
        } else if (raw == Py_True || raw == Py_False) {
            if (kind == s_boolValue || (PyUnicode_CheckExact(kind) &&
                                        PyUnicode_Compare(kind, s_boolValue) == 0))
                return Py_NewRef(raw == Py_True ? s_true : s_false);
        } else if (kind == s_arrayValue || (PyUnicode_CheckExact(kind) &&
                                            PyUnicode_Compare(kind, s_arrayValue) == 0)) {
            PyObject *text = array_text(raw);
            if (text != NULL || PyErr_Occurred())
                return text;
        }
    }
    return PyObject_CallOneArg(names->as_string, value);
}

/* A KeyValue list as rows.attributes_map gives it: keys sorted (stable, so the last of
 * duplicate keys wins), values as text. A new dict; NULL: decline. */
PyObject *attributes_map(PyObject *pairs, const Names *names) {
    if (pairs == Py_None)
        return PyDict_New();
    Py_ssize_t count = PyList_GET_SIZE(pairs);
    if (count > MAX_SORTED_PAIRS)
        return NULL;
    PyObject *keys[MAX_SORTED_PAIRS];
    Py_ssize_t order[MAX_SORTED_PAIRS];
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        keys[i] = get(pair, s_key, NULL);
        if (keys[i] == NULL || !PyUnicode_CheckExact(keys[i]))
            return NULL;
        /* Insertion sort, stable: a span has a few dozen keys, mostly in order already. */
        Py_ssize_t j = i;
        while (j > 0) {
            int before = PyUnicode_Compare(keys[order[j - 1]], keys[i]);
            if (before <= 0)
                break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    PyObject *map = PyDict_New();
    if (map == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = get(PyList_GET_ITEM(pairs, order[i]), s_value, NULL);
        PyObject *text = value != NULL && PyDict_CheckExact(value) ? value_text(value, names)
                                                                    : NULL;
        if (text == NULL || PyDict_SetItem(map, keys[order[i]], text) < 0) {
            Py_XDECREF(text);
            Py_DECREF(map);
            return NULL;
        }
        Py_DECREF(text);
    }
    return map;
}

