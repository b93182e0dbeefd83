/* pycompat_driver - test helper for check_pycompat_vs_python.py: reads lines
 * "OP<TAB>ARG" on stdin and prints each result followed by a NUL byte; "!ERR" where the
 * function refused.  OPs: truthy, str, int, float (ARG is JSON text), repr (ARG is a
 * JSON number, printed through py_float_repr), iso (ARG is the raw timestamp text), esc
 * (ARG is hex bytes, printed through py_json_put_string). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pycompat.h"

static void print_double(double d)
{
    char buf[PY_FLOAT_REPR_MAX];
    if (d != d)
        fputs("nan", stdout);
    else if (py_float_repr(d, buf, sizeof buf) < 0)
        fputs(d < 0 ? "-inf" : "inf", stdout);
    else
        fputs(buf, stdout);
}

static void escape_hex(const char *hex)
{
    struct strbuf b = {0};
    size_t n = strlen(hex) / 2;
    char *bytes = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        bytes[i] = (char)v;
    }
    if (py_json_put_string(&b, bytes, n) < 0 || b.nomem)
        fputs("!ERR", stdout);
    else
        fputs(b.data, stdout);
    free(b.data);
    free(bytes);
}

static void run(const char *op, const char *arg)
{
    json_t *v = NULL;
    long long i;
    double d;
    int64_t us;
    char text[4096];

    if (!strcmp(op, "iso")) {
        if (py_fromisoformat(arg, &us) < 0)
            fputs("!ERR", stdout);
        else
            printf("%lld", (long long)us);
        return;
    }
    if (!strcmp(op, "esc")) {
        escape_hex(arg);
        return;
    }
    v = json_loads(arg, JSON_DECODE_ANY, NULL);
    if (!v) {
        fputs("!BADJSON", stdout);
    } else if (!strcmp(op, "truthy")) {
        fputs(py_truthy(v) ? "True" : "False", stdout);
    } else if (!strcmp(op, "str")) {
        fputs(py_str(v, text, sizeof text) < 0 ? "!ERR" : text, stdout);
    } else if (!strcmp(op, "int")) {
        if (py_int(v, &i) < 0)
            fputs("!ERR", stdout);
        else
            printf("%lld", i);
    } else if (!strcmp(op, "float")) {
        if (py_float(v, &d) < 0)
            fputs("!ERR", stdout);
        else
            print_double(d);
    } else if (!strcmp(op, "repr")) {
        print_double(json_number_value(v));
    }
    json_decref(v);
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        char *tab = strchr(line, '\t');
        if (tab) {
            *tab = '\0';
            run(line, tab + 1);
        }
        putchar('\0');
    }
    free(line);
    return fflush(stdout) == 0 ? 0 : 1;
}
