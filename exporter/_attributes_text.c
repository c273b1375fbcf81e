/*
 * A span's attributes as the spool's OTLP JSON text, in C (exporter/otlp_encode.py writes the
 * same text in Python without it, and whenever this declines).
 *
 * A batched read span is nearly all arrays: 512 URIs, digests and sizes. In Python each array
 * was checked for characters JSON escapes, joined, its ints made text and joined, and the
 * pieces joined again into the span: ~4k instructions a record, most of them copies. Here the
 * whole list, keys and values, is measured in one pass and written in a second straight into
 * the str it returns: a byte is copied once.
 *
 * For the spool, a batched span's attributes are not made into a str at all: `attributes_text`
 * with `defer_items` gives back their (key, value) pairs, checked to be written here, and the
 * spool's writer has `attributes_into` write the text a window at a time straight into the
 * buffer it reuses for the line (exporter/_line_chunks.c). A str of ~90 KB a span was new
 * memory, each page of it a page fault in a forked DataLoader worker (~80 for ~1,900 files at
 * its exit), and a measuring pass over every value besides.
 *
 * Written exactly as Python writes them: strings as json's encode_basestring_ascii quotes them
 * (lone surrogates as \udXXX: encode_json's last pass rewrites them on the whole line, as it
 * does Python's), exact ints within 64 bits, bools, floats as float.__repr__ (not finite: the
 * strings OTLP JSON uses), and flat lists or tuples of those. Anything else (a subclass, a
 * bigger int, a mapping, a nested array) returns None: Python's path writes the attributes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#ifndef Py_ALWAYS_INLINE /* CPython's headers have it from 3.11 */
#define Py_ALWAYS_INLINE __attribute__((always_inline))
#endif

/* The text being written, or only measured (`at` NULL), or only checked to be written here
 * (`check`): bytes [from, to) of it go to `at`, the others are counted. */
typedef struct {
    char *at;
    Py_ssize_t size; /* the text so far, written or not */
    Py_ssize_t from, to;
    int escapes; /* whether the measuring pass found a string that is not plain ASCII */
    /* Refuse lone surrogates (checking, or writing a window): the line they are in is
     * rewritten in Python (otlp_encode.unicode_json), which the spool's writer leaves them to. */
    int strict;
    int check;
    /* Where a window's pass starts: at pair `start_pair`, its value's item `start_item` - 1
     * (0: the pair itself), `size` the text before it. Where the next can (`mark_*`): the last
     * such place at or before `to`, so a window passes over one item of the text before it,
     * not all of it. */
    Py_ssize_t start_pair, start_item, pair, mark_pair, mark_item, mark_size;
} Text;

/* The window's bytes are written: a refusal or the window's end stop the pass there. */
enum { REFUSED = 0, WRITTEN = 1, WINDOW_FULL = 2 };

/* Always in line, as are the writers of a scalar: the literals' copies become a few moves,
 * not a call each to memcpy, and an array's values no call each (callgrind: ~1.0k -> ~0.8k
 * instructions a file of a batched span). */
static void put_clipped(Text *text, Py_ssize_t start, const char *bytes, Py_ssize_t size);

static inline Py_ALWAYS_INLINE void put(Text *text, const char *bytes, Py_ssize_t size) {
    Py_ssize_t start = text->size;
    text->size += size;
    if (text->at == NULL)
        return;
    if (start >= text->from && text->size <= text->to) /* the common case: all in the window */
        memcpy(text->at + (start - text->from), bytes, size);
    else
        put_clipped(text, start, bytes, size);
}

/* The part of `bytes` (the text's from `start` on) in the window, if any. Out of line: the
 * in-line copies stay a few moves. */
static void put_clipped(Text *text, Py_ssize_t start, const char *bytes, Py_ssize_t size) {
    if (text->size <= text->from || start >= text->to)
        return;
    Py_ssize_t skip = start < text->from ? text->from - start : 0;
    Py_ssize_t end = text->size > text->to ? text->to - start : size;
    memcpy(text->at + (start + skip - text->from), bytes + skip, end - skip);
}

/* The text so far ends at the start of pair `text->pair`'s item `item` - 1 (0: of the pair). */
static inline Py_ALWAYS_INLINE void mark(Text *text, Py_ssize_t item) {
    if (text->at != NULL && text->size <= text->to) {
        text->mark_pair = text->pair;
        text->mark_item = item;
        text->mark_size = text->size;
    }
}

/* Whether `string` (an exact str) has a lone surrogate: never in ASCII. */
static int has_lone_surrogate(PyObject *string) {
    if (PyUnicode_IS_ASCII(string) || PyUnicode_KIND(string) == PyUnicode_1BYTE_KIND)
        return 0;
    int kind = PyUnicode_KIND(string);
    const void *data = PyUnicode_DATA(string);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(string); i++)
        if (Py_UNICODE_IS_SURROGATE(PyUnicode_READ(kind, data, i)))
            return 1;
    return 0;
}

#define PUT(text, literal) put((text), (literal), sizeof(literal) - 1)

/* Whether ASCII `bytes` have nothing JSON escapes (a control character, DEL, '"', '\\'): as
 * URIs and digests have, copied as they are. 16 bytes a step where SSE2 is (the compiler did
 * not vectorise the plain loop: ~2.5 instructions a byte), the last step overlapping the one
 * before it instead of a byte-by-byte tail. */
static int plain_ascii(const unsigned char *bytes, Py_ssize_t size) {
#if defined(__SSE2__)
    if (size >= 16) {
        /* Signed compares are right here: ASCII bytes are all below 0x80. */
        const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                      backslash = _mm_set1_epi8('\\'), delete = _mm_set1_epi8(0x7f);
        __m128i found = _mm_setzero_si128();
        for (Py_ssize_t i = 0; i < size; i += 16) {
            const unsigned char *at = i + 16 <= size ? bytes + i : bytes + size - 16;
            __m128i block = _mm_loadu_si128((const __m128i *)at);
            found = _mm_or_si128(found, _mm_or_si128(_mm_cmplt_epi8(block, space),
                                                     _mm_cmpeq_epi8(block, quote)));
            found = _mm_or_si128(found, _mm_or_si128(_mm_cmpeq_epi8(block, backslash),
                                                     _mm_cmpeq_epi8(block, delete)));
        }
        return _mm_movemask_epi8(found) == 0;
    }
#endif
    unsigned char found = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = bytes[i];
        found |= (c < 0x20) | (c == 0x7f) | (c == '"') | (c == '\\');
    }
    return !found;
}

static void put_hex4(Text *text, Py_UCS4 unit) {
    char escape[6] = {'\\', 'u', Py_hexdigits[(unit >> 12) & 0xf], Py_hexdigits[(unit >> 8) & 0xf],
                      Py_hexdigits[(unit >> 4) & 0xf], Py_hexdigits[unit & 0xf]};
    put(text, escape, 6);
}

/* One character as json's ascii_escape_unichar writes it (lowercase hex, a character beyond
 * the BMP as its UTF-16 surrogate pair). */
static void put_character(Text *text, Py_UCS4 c) {
    char plain = (char)c;
    switch (c) {
    case '"': PUT(text, "\\\""); return;
    case '\\': PUT(text, "\\\\"); return;
    case '\b': PUT(text, "\\b"); return;
    case '\f': PUT(text, "\\f"); return;
    case '\n': PUT(text, "\\n"); return;
    case '\r': PUT(text, "\\r"); return;
    case '\t': PUT(text, "\\t"); return;
    }
    if (c >= ' ' && c <= '~') {
        put(text, &plain, 1);
    } else if (c >= 0x10000) {
        put_hex4(text, Py_UNICODE_HIGH_SURROGATE(c));
        put_hex4(text, Py_UNICODE_LOW_SURROGATE(c));
    } else {
        put_hex4(text, c);
    }
}

/* An exact str's characters as in a JSON string literal (its quotes are the caller's, in
 * one literal with what comes before and after). */
static inline Py_ALWAYS_INLINE void put_characters(Text *text, PyObject *string) {
    if (text->check)
        return;
    Py_ssize_t length = PyUnicode_GET_LENGTH(string);
    /* Writing, after a measure that found every string plain: copied without a second look. */
    int known_plain = text->at != NULL && !text->escapes;
    if (PyUnicode_IS_ASCII(string) &&
        (known_plain || plain_ascii(PyUnicode_1BYTE_DATA(string), length))) {
        put(text, (const char *)PyUnicode_1BYTE_DATA(string), length);
    } else {
        text->escapes = 1;
        int kind = PyUnicode_KIND(string);
        const void *data = PyUnicode_DATA(string);
        for (Py_ssize_t i = 0; i < length; i++)
            put_character(text, PyUnicode_READ(kind, data, i));
    }
}

/* An exact int as str(value) writes it: 1, or 0 beyond 64 bits (or -1 and an exception). */
static inline Py_ALWAYS_INLINE int put_int(Text *text, PyObject *value) {
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow)
        return 0;
    if (number == -1 && PyErr_Occurred())
        return -1;
    /* Negated as unsigned: LLONG_MIN has no positive counterpart. */
    unsigned long long rest = (unsigned long long)number;
    if (number < 0)
        rest = 0ULL - rest;
    if (text->at == NULL) { /* measuring: the digits counted, not made */
        Py_ssize_t size = number < 0 ? 2 : 1;
        /* `rest` is at most 2^63 < 10^19: `power` stops before it could overflow. */
        for (unsigned long long power = 10; rest >= power; power *= 10)
            size++;
        text->size += size;
        return 1;
    }
    char digits[24];
    char *start = digits + sizeof(digits);
    do {
        *--start = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (number < 0)
        *--start = '-';
    put(text, start, digits + sizeof(digits) - start);
    return 1;
}

/* An exact float as `{"doubleValue":...}`: float.__repr__ (what json writes), or the strings
 * protobuf's JSON mapping gives NaN and the infinities. */
static int put_double(Text *text, double number) {
    if (text->check)
        return 1;
    PUT(text, "{\"doubleValue\":");
    if (isnan(number)) {
        PUT(text, "\"NaN\"}");
    } else if (isinf(number)) {
        if (number > 0)
            PUT(text, "\"Infinity\"}");
        else
            PUT(text, "\"-Infinity\"}");
    } else {
        char *repr = PyOS_double_to_string(number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (repr == NULL)
            return -1;
        put(text, repr, (Py_ssize_t)strlen(repr));
        PyMem_Free(repr);
        PUT(text, "}");
    }
    return 1;
}

/* A value that is not an array as its AnyValue text: 1 written, 0 a value Python writes, -1
 * an error. */
static inline Py_ALWAYS_INLINE int put_scalar(Text *text, PyObject *value) {
    if (PyUnicode_CheckExact(value)) {
        if (PyUnicode_READY(value) < 0)
            return -1;
        if (text->strict && has_lone_surrogate(value))
            return REFUSED;
        PUT(text, "{\"stringValue\":\"");
        put_characters(text, value);
        PUT(text, "\"}");
        return 1;
    }
    if (value == Py_True) {
        PUT(text, "{\"boolValue\":true}");
        return 1;
    }
    if (value == Py_False) {
        PUT(text, "{\"boolValue\":false}");
        return 1;
    }
    if (PyLong_CheckExact(value)) {
        PUT(text, "{\"intValue\":\"");
        int written = put_int(text, value);
        if (written <= 0)
            return written;
        PUT(text, "\"}");
        return 1;
    }
    if (PyFloat_CheckExact(value))
        return put_double(text, PyFloat_AS_DOUBLE(value));
    return 0;
}

/* Any attribute value: a scalar, or an exact list or tuple of scalars, from its item `first`
 * on (the text before it written already: a window's pass that starts there). */
static int put_value(Text *text, PyObject *value, Py_ssize_t first) {
    if (!PyList_CheckExact(value) && !PyTuple_CheckExact(value))
        return first ? REFUSED : put_scalar(text, value);
    /* A list's items are read with borrowed references: nothing here runs Python code, so
     * nothing can change the list while it is written. */
    Py_ssize_t count = PySequence_Fast_GET_SIZE(value);
    PyObject **items = PySequence_Fast_ITEMS(value);
    if (!first)
        PUT(text, "{\"arrayValue\":{\"values\":[");
    else if (first > count)
        return REFUSED; /* shorter than when its text was begun */
    for (Py_ssize_t i = first ? first - 1 : 0; i < count; i++) {
        if (text->at != NULL && text->size >= text->to)
            return WINDOW_FULL;
        mark(text, i + 1);
        if (i)
            PUT(text, ",");
        int written = put_scalar(text, items[i]);
        if (written <= 0)
            return written;
    }
    PUT(text, "]}}");
    return 1;
}

/* `[{"key":...,"value":...},...]` of a list of (key, value) pairs. */
static int put_attributes(Text *text, PyObject *pairs) {
    Py_ssize_t count = PyList_GET_SIZE(pairs);
    if (text->size == 0) /* not a window's pass begun after it */
        PUT(text, "[");
    for (Py_ssize_t i = text->start_pair; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            return 0;
        PyObject *key = PyTuple_GET_ITEM(pair, 0);
        if (!PyUnicode_CheckExact(key))
            return 0;
        if (PyUnicode_READY(key) < 0)
            return -1;
        if (text->strict && has_lone_surrogate(key))
            return REFUSED;
        text->pair = i;
        Py_ssize_t first = i == text->start_pair ? text->start_item : 0;
        if (!first) {
            if (text->at != NULL && text->size >= text->to)
                return WINDOW_FULL;
            mark(text, 0);
            if (i)
                PUT(text, ",");
            PUT(text, "{\"key\":\"");
            put_characters(text, key);
            PUT(text, "\",\"value\":");
        }
        int written = put_value(text, PyTuple_GET_ITEM(pair, 1), first);
        if (written != WRITTEN)
            return written;
        PUT(text, "}");
    }
    PUT(text, "]");
    return 1;
}

/* Whether `pairs` hold an array of at least `items` values: a span worth writing later. */
static int has_array_of(PyObject *pairs, Py_ssize_t items) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        PyObject *value = PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2
                              ? PyTuple_GET_ITEM(pair, 1) : NULL;
        if (value != NULL && (PyList_CheckExact(value) || PyTuple_CheckExact(value)) &&
            PySequence_Fast_GET_SIZE(value) >= items)
            return 1;
    }
    return 0;
}

/* attributes_text(attributes, defer_items=0) */
static PyObject *attributes_text(PyObject *self, PyObject *const *args, Py_ssize_t count) {
    /* Its two arguments taken as they are: parsing them cost ~350 instructions a span. */
    if (count < 1 || count > 2) {
        PyErr_SetString(PyExc_TypeError, "attributes_text takes one or two arguments");
        return NULL;
    }
    PyObject *attributes = args[0];
    Py_ssize_t defer_items = count > 1 ? PyLong_AsSsize_t(args[1]) : 0;
    if (defer_items == -1 && PyErr_Occurred())
        return NULL;
    PyObject *pairs = PyMapping_Items(attributes);
    if (pairs == NULL)
        return NULL;
    Text text = {.to = PY_SSIZE_T_MAX};
    PyObject *result = NULL;
    if (defer_items > 0 && has_array_of(pairs, defer_items)) {
        /* Checked now, so that attributes_into writes all of it (or the export's encoder,
         * not its writer, finds what it cannot). */
        Text check = {.to = PY_SSIZE_T_MAX, .strict = 1, .check = 1};
        int written = put_attributes(&check, pairs);
        if (written == WRITTEN)
            return pairs;
        if (written < 0) {
            Py_DECREF(pairs);
            return NULL;
        }
    }
    int written = put_attributes(&text, pairs);
    if (written > 0) {
        result = PyUnicode_New(text.size, 127);
        if (result != NULL) {
            /* The same pass again, now writing: the same size, no copy to fit. */
            text = (Text){.at = (char *)PyUnicode_1BYTE_DATA(result), .to = PY_SSIZE_T_MAX,
                          .escapes = text.escapes};
            if (put_attributes(&text, pairs) < 0)
                Py_CLEAR(result);
        }
    } else if (written == 0) {
        result = Py_NewRef(Py_None);
    }
    Py_DECREF(pairs);
    return result;
}

/* attributes_into(buffer, start, pairs, offset, resume): bytes [offset, offset + room) of the
 * text of `pairs` (as attributes_text gave them) written to buffer[start:], `room` what is
 * left of it, the pass begun at `resume` (the last call's mark, or (0, 0, 0)). It stops where
 * the window ends. */
static PyObject *attributes_into(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    Py_ssize_t start, offset, pair, item, size;
    PyObject *pairs;
    if (!PyArg_ParseTuple(args, "w*nO!n(nnn)", &buffer, &start, &PyList_Type, &pairs, &offset,
                          &pair, &item, &size))
        return NULL;
    if (start < 0 || start > buffer.len || offset < 0 || size < 0 || size > offset ||
        pair < 0 || item < 0) {
        PyBuffer_Release(&buffer);
        PyErr_SetString(PyExc_ValueError, "attributes_into: start, offset or resume out of range");
        return NULL;
    }
    Text text = {.at = (char *)buffer.buf + start, .size = size, .from = offset,
                 .to = offset + (buffer.len - start), .escapes = 1, .strict = 1,
                 .start_pair = pair, .start_item = item, .mark_pair = pair, .mark_item = item,
                 .mark_size = size};
    int written = put_attributes(&text, pairs);
    PyBuffer_Release(&buffer);
    if (written < 0)
        return NULL;
    Py_ssize_t end = text.size < text.to ? text.size : text.to;
    int state = written == WRITTEN && text.size <= text.to ? WRITTEN
                : written == REFUSED                        ? REFUSED
                                                            : WINDOW_FULL;
    return Py_BuildValue("(in(nnn))", state, end > offset ? end - offset : 0, text.mark_pair,
                         text.mark_item, text.mark_size);
}

static PyMethodDef methods[] = {
    {"attributes_text", (PyCFunction)(void (*)(void))attributes_text, METH_FASTCALL,
     "attributes_text(attributes, defer_items=0): the mapping's OTLP JSON attribute list as the "
     "spool's encoder writes it, or None when it holds a value only the Python encoder writes; "
     "with `defer_items`, where an array has that many values and C writes all of it, its "
     "(key, value) pairs for attributes_into instead."},
    {"attributes_into", attributes_into, METH_VARARGS,
     "attributes_into(buffer, start, pairs, offset, resume): bytes from `offset` of the text of "
     "`pairs` written to buffer[start:] while it has room, begun at `resume`: (state, bytes "
     "written, where the next call begins), state 1 the text ends there, 2 the buffer is full, "
     "0 Python writes the text from there."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_attributes_text",
    "A span's attributes as the spool's OTLP JSON text, in C (see exporter/otlp_encode.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__attributes_text(void) { return PyModule_Create(&module); }
