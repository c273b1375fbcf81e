/*
 * Between the parts of the _attributes_text module: _attributes_text.c (the module: a span's
 * attributes as a str, or written a window at a time into a caller's buffer) and
 * _attributes_writer.c (the text itself, written, measured or checked in one pass).
 */
#ifndef CLEW_ATTRIBUTES_TEXT_H
#define CLEW_ATTRIBUTES_TEXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

/* `[{"key":...,"value":...},...]` of a list of (key, value) pairs, as `text` says (written,
 * measured or checked, a window of it): WRITTEN, WINDOW_FULL, REFUSED (a value Python writes),
 * or -1 with an exception set. */
int put_attributes(Text *text, PyObject *pairs);

#endif
