/*
 * One parsed spool line (an OTLP JSON ExportTraceServiceRequest, as orjson gives it) to the
 * Collector's otel_traces rows, in C (exporter/store/rows.py makes the same rows in Python,
 * and whenever this declines).
 *
 * The ingest converts the next batch in a thread while chDB inserts the current one; on two
 * cores the conversion's Python competes with the insert for the CPU. Here a span's row is
 * built without a Python frame per span or attribute: the ids checked and lowercased, the
 * times made ints, the attribute maps sorted and built, each value a str the line already
 * holds (a string, a canonical int, a bool's literal).
 *
 * Rows are exactly what rows.spans_to_rows appends. Values other than strings, canonical ints
 * and bools are made by rows.as_string (passed in), which is what Python's path calls for
 * them. Anything else that is not the usual shape (a missing or mistyped field, an id that is
 * not plain hex, a time out of range, a pair without a value, a key that is no str) returns
 * None before a row is kept, and Python's path converts the line: it gives the same rows or
 * raises what it raises for it.
 */
#include "_span_rows.h"

/* Field names and constant values, interned once. */
static PyObject *s_resourceSpans, *s_resource, *s_scopeSpans, *s_scope, *s_name, *s_version,
    *s_spans, *s_traceId, *s_spanId, *s_parentSpanId, *s_startTimeUnixNano, *s_endTimeUnixNano,
    *s_status, *s_events, *s_links, *s_traceState, *s_kind, *s_code, *s_message,
    *s_timeUnixNano, *s_service_name, *zero, *empty_tuple;
PyObject *s_attributes, *s_key, *s_value, *s_stringValue, *s_intValue, *s_boolValue,
    *s_arrayValue, *s_values, *s_empty, *s_true, *s_false;

/* `mapping`[`key`] as a borrowed reference, or `fallback` (borrowed) when it is missing.
 * NULL (an error cleared) when `mapping` is no dict. */
PyObject *get(PyObject *mapping, PyObject *key, PyObject *fallback) {
    if (!PyDict_CheckExact(mapping))
        return NULL;
    PyObject *found = PyDict_GetItemWithError(mapping, key);
    if (found == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return NULL;
        }
        return fallback;
    }
    return found;
}

/* `mapping`.get(`key`) or (): a borrowed list, Py_None when falsy, NULL when not a list. */
PyObject *get_list(PyObject *mapping, PyObject *key) {
    PyObject *found = get(mapping, key, Py_None);
    if (found == NULL || found == Py_None)
        return found;
    if (PyList_CheckExact(found))
        return PyList_GET_SIZE(found) ? found : Py_None;
    int truth = PyObject_IsTrue(found);
    if (truth < 0)
        PyErr_Clear();
    return truth == 0 ? Py_None : NULL;
}

/* `mapping`.get(`key`) or {}: a borrowed dict, Py_None when falsy, NULL when not a dict. */
static PyObject *get_dict(PyObject *mapping, PyObject *key) {
    PyObject *found = get(mapping, key, Py_None);
    if (found == NULL || found == Py_None)
        return found;
    if (PyDict_CheckExact(found))
        return found;
    int truth = PyObject_IsTrue(found);
    if (truth < 0)
        PyErr_Clear();
    return truth == 0 ? Py_None : NULL;
}

/* A trace or span id of `length` hex digits as rows._id gives it: lowercase, '' when all
 * zero, '' when falsy. A new reference; NULL when it is not plain hex of that length (base64,
 * or no id): rows._id decides. */
static PyObject *hex_id(PyObject *raw, Py_ssize_t length) {
    if (raw == NULL || raw == Py_None || (PyUnicode_CheckExact(raw) && !PyUnicode_GET_LENGTH(raw))) {
        Py_INCREF(s_empty);
        return s_empty;
    }
    if (!PyUnicode_CheckExact(raw) || !PyUnicode_IS_ASCII(raw) ||
        PyUnicode_GET_LENGTH(raw) != length)
        return NULL;
    const unsigned char *digits = PyUnicode_1BYTE_DATA(raw);
    int upper = 0, nonzero = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = digits[i];
        if (c >= 'A' && c <= 'F')
            upper = 1;
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return NULL;
        nonzero |= c != '0';
    }
    if (!nonzero) {
        Py_INCREF(s_empty);
        return s_empty;
    }
    if (!upper) {
        Py_INCREF(raw);
        return raw;
    }
    PyObject *lower = PyUnicode_New(length, 127);
    if (lower == NULL)
        return NULL;
    unsigned char *out = PyUnicode_1BYTE_DATA(lower);
    for (Py_ssize_t i = 0; i < length; i++)
        out[i] = digits[i] >= 'A' && digits[i] <= 'F' ? digits[i] + ('a' - 'A') : digits[i];
    return lower;
}

/* int(`raw`) (`raw` NULL: 0) as an OTLP time: 0 <= t < 2**63. A new reference; NULL when
 * int() refuses it or it is out of range (Python's path raises). `value` gets it. */
static PyObject *unix_nano(PyObject *raw, long long *value) {
    PyObject *number;
    if (raw == NULL)
        number = Py_NewRef(zero);
    else if (PyLong_CheckExact(raw))
        number = Py_NewRef(raw);
    else
        number = PyObject_CallOneArg((PyObject *)&PyLong_Type, raw);
    if (number == NULL)
        return NULL;
    int overflow = 0;
    *value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (overflow || *value < 0 || (*value == -1 && PyErr_Occurred())) {
        Py_DECREF(number);
        return NULL;
    }
    return number;
}

/* `table`.get(`raw`, '') for the kind and status names (a new reference; NULL: decline, as
 * for an unhashable `raw`). */
static PyObject *named(PyObject *table, PyObject *raw) {
    PyObject *name = PyDict_GetItemWithError(table, raw);
    if (name != NULL)
        return Py_NewRef(name);
    if (!PyErr_Occurred())
        return Py_NewRef(s_empty);
    PyErr_Clear();
    return NULL;
}

/* A new list of `what`(item) for each dict of `items` (NULL: decline). */
typedef PyObject *(*Field)(PyObject *item, const Names *names);

static PyObject *each(PyObject *items, Field what, const Names *names) {
    Py_ssize_t count = PyList_GET_SIZE(items);
    PyObject *out = PyList_New(count);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i), *made = NULL;
        if (PyDict_CheckExact(item))
            made = what(item, names);
        if (made == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, made);
    }
    return out;
}

static PyObject *event_time(PyObject *event, const Names *names) {
    long long ignored;
    return unix_nano(PyDict_GetItemWithError(event, s_timeUnixNano), &ignored);
}

static PyObject *default_get(PyObject *item, PyObject *key, PyObject *fallback) {
    PyObject *found = get(item, key, fallback);
    return found == NULL ? NULL : Py_NewRef(found);
}

static PyObject *item_name(PyObject *item, const Names *names) {
    return default_get(item, s_name, s_empty);
}

static PyObject *item_state(PyObject *item, const Names *names) {
    return default_get(item, s_traceState, s_empty);
}

static PyObject *item_attributes(PyObject *item, const Names *names) {
    PyObject *pairs = get_list(item, s_attributes);
    return pairs == NULL ? NULL : attributes_map(pairs, names);
}

static PyObject *link_trace_id(PyObject *link, const Names *names) {
    return hex_id(PyDict_GetItemWithError(link, s_traceId), 32);
}

static PyObject *link_span_id(PyObject *link, const Names *names) {
    return hex_id(PyDict_GetItemWithError(link, s_spanId), 16);
}

/* Events' or links' columns: a list each, or the shared empty tuple when there are none.
 * On DECLINE every column is NULL. */
static int nested(PyObject *items, const Field *fields, int count, PyObject **columns,
                  const Names *names) {
    for (int i = 0; i < count; i++) {
        columns[i] = items == Py_None ? Py_NewRef(empty_tuple) : each(items, fields[i], names);
        if (columns[i] == NULL) {
            while (i--)
                Py_CLEAR(columns[i]);
            return DECLINE;
        }
    }
    return 0;
}

static const Field EVENT_FIELDS[] = {event_time, item_name, item_attributes};
static const Field LINK_FIELDS[] = {link_trace_id, link_span_id, item_state, item_attributes};

/* The row of one span (a new 22-tuple in INSERT_COLUMNS order; NULL: decline). */
static PyObject *span_row(PyObject *span, PyObject *service, PyObject *resource,
                          PyObject *scope_name, PyObject *scope_version, const Names *names) {
    PyObject *row = PyTuple_New(22);
    if (row == NULL || !PyDict_CheckExact(span))
        goto decline;
    long long start = 0, end = 0;
    PyObject *status = get_dict(span, s_status), *events = get_list(span, s_events),
             *links = get_list(span, s_links);
    if (status == NULL || events == NULL || links == NULL)
        goto decline;
    PyObject *values[22] = {
        unix_nano(PyDict_GetItemWithError(span, s_startTimeUnixNano), &start),
        hex_id(PyDict_GetItemWithError(span, s_traceId), 32),
        hex_id(PyDict_GetItemWithError(span, s_spanId), 16),
        hex_id(PyDict_GetItemWithError(span, s_parentSpanId), 16),
        default_get(span, s_traceState, s_empty),
        default_get(span, s_name, s_empty),
        NULL, /* kind */
        Py_NewRef(service),
        Py_NewRef(resource),
        Py_NewRef(scope_name),
        Py_NewRef(scope_version),
        item_attributes(span, names),
        NULL, /* duration, from the end time */
        NULL, /* status code */
        status == Py_None ? Py_NewRef(s_empty) : default_get(status, s_message, s_empty),
    };
    PyObject *kind = get(span, s_kind, zero);
    values[6] = kind == NULL ? NULL : named(names->kinds, kind);
    PyObject *code = status == Py_None ? zero : get(status, s_code, zero);
    values[13] = code == NULL ? NULL : named(names->statuses, code);
    PyObject *end_time = unix_nano(PyDict_GetItemWithError(span, s_endTimeUnixNano), &end);
    if (end_time != NULL) {
        values[12] = end > start ? PyLong_FromLongLong(end - start) : Py_NewRef(zero);
        Py_DECREF(end_time);
    }
    int failed = nested(events, EVENT_FIELDS, 3, values + 15, names) == DECLINE ||
                 nested(links, LINK_FIELDS, 4, values + 18, names) == DECLINE;
    for (int i = 0; i < 22; i++) {
        if (values[i] == NULL)
            failed = 1;
        PyTuple_SET_ITEM(row, i, values[i]); /* NULLs are skipped when the row is freed */
    }
    if (!failed)
        return row;
decline:
    PyErr_Clear();
    Py_XDECREF(row);
    return NULL;
}

/* The rows of one resource's spans, appended to `rows` (DECLINE, or 0). */
static int resource_rows(PyObject *resource_spans, PyObject *rows, const Names *names) {
    PyObject *resource = get_dict(resource_spans, s_resource), *scopes;
    PyObject *pairs = resource == Py_None ? Py_None
                      : resource == NULL  ? NULL
                                          : get_list(resource, s_attributes);
    if (pairs == NULL || (scopes = get_list(resource_spans, s_scopeSpans)) == NULL)
        return DECLINE;
    PyObject *attributes = attributes_map(pairs, names);
    if (attributes == NULL)
        return DECLINE;
    PyObject *service = PyDict_GetItemWithError(attributes, s_service_name);
    service = service != NULL ? service : s_empty;
    int result = 0;
    for (Py_ssize_t i = 0; scopes != Py_None && i < PyList_GET_SIZE(scopes) && !result; i++) {
        PyObject *scope_spans = PyList_GET_ITEM(scopes, i), *scope, *spans;
        if ((scope = get_dict(scope_spans, s_scope)) == NULL ||
            (spans = get_list(scope_spans, s_spans)) == NULL) {
            result = DECLINE;
            break;
        }
        PyObject *scope_name = scope == Py_None ? s_empty : get(scope, s_name, s_empty);
        PyObject *scope_version = scope == Py_None ? s_empty : get(scope, s_version, s_empty);
        for (Py_ssize_t j = 0; spans != Py_None && j < PyList_GET_SIZE(spans); j++) {
            PyObject *row = span_row(PyList_GET_ITEM(spans, j), service, attributes, scope_name,
                                     scope_version, names);
            if (row == NULL || PyList_Append(rows, row) < 0) {
                Py_XDECREF(row);
                result = DECLINE;
                break;
            }
            Py_DECREF(row);
        }
    }
    Py_DECREF(attributes);
    return result;
}

static PyObject *spans_to_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "spans_to_rows(request, kinds, statuses, as_string) takes 4 arguments");
        return NULL;
    }
    Names names = {args[1], args[2], args[3]};
    if (!PyDict_CheckExact(names.kinds) || !PyDict_CheckExact(names.statuses)) {
        PyErr_SetString(PyExc_TypeError, "kinds and statuses must be dicts");
        return NULL;
    }
    PyObject *resources = get_list(args[0], s_resourceSpans), *rows = PyList_New(0);
    if (rows == NULL)
        return NULL;
    for (Py_ssize_t i = 0; resources != NULL && resources != Py_None &&
                           i < PyList_GET_SIZE(resources); i++) {
        PyObject *resource_spans = PyList_GET_ITEM(resources, i);
        if (resource_rows(resource_spans, rows, &names) == DECLINE) {
            resources = NULL;
            break;
        }
    }
    if (resources == NULL) {
        PyErr_Clear();
        Py_DECREF(rows);
        Py_RETURN_NONE;
    }
    return rows;
}

static PyMethodDef methods[] = {
    {"spans_to_rows", (PyCFunction)(void (*)(void))spans_to_rows, METH_FASTCALL,
     "spans_to_rows(request, kinds, statuses, as_string) -> the rows of rows.spans_to_rows, "
     "or None: that line is converted by Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_span_rows",
    "OTLP JSON requests to otel_traces rows in C (rows.spans_to_rows falls back to Python).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__span_rows(void) {
    struct {
        PyObject **slot;
        const char *text;
    } strings[] = {
        {&s_resourceSpans, "resourceSpans"}, {&s_resource, "resource"},
        {&s_attributes, "attributes"}, {&s_scopeSpans, "scopeSpans"}, {&s_scope, "scope"},
        {&s_name, "name"}, {&s_version, "version"}, {&s_spans, "spans"},
        {&s_traceId, "traceId"}, {&s_spanId, "spanId"}, {&s_parentSpanId, "parentSpanId"},
        {&s_startTimeUnixNano, "startTimeUnixNano"}, {&s_endTimeUnixNano, "endTimeUnixNano"},
        {&s_status, "status"}, {&s_events, "events"}, {&s_links, "links"},
        {&s_traceState, "traceState"}, {&s_kind, "kind"}, {&s_code, "code"},
        {&s_message, "message"}, {&s_timeUnixNano, "timeUnixNano"}, {&s_key, "key"},
        {&s_value, "value"}, {&s_stringValue, "stringValue"}, {&s_intValue, "intValue"},
        {&s_boolValue, "boolValue"}, {&s_arrayValue, "arrayValue"}, {&s_values, "values"}, {&s_service_name, "service.name"}, {&s_empty, ""},
        {&s_true, "true"}, {&s_false, "false"},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        if ((*strings[i].slot = PyUnicode_InternFromString(strings[i].text)) == NULL)
            return NULL;
    if ((zero = PyLong_FromLong(0)) == NULL || (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
