/*
 * A span's attributes as OTLP JSON text, written, measured or checked (the _attributes_text
 * module, _attributes_text.c, says what for). Written exactly as Python writes them (see there).
 */
#include "_attributes_text.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#ifndef Py_ALWAYS_INLINE /* CPython's headers have it from 3.11 */
#define Py_ALWAYS_INLINE __attribute__((always_inline))
#endif

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
    if (text->check)
        return 1;
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

int put_attributes(Text *text, PyObject *pairs) {
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
