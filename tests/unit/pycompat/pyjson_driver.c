/* pyjson_driver - test helper for check_pyjson_vs_python.py: reads one JSON text per line
 * on stdin, decodes it with jansson and prints py_json_dumps(value, argv[1]) followed
 * by a NUL byte (the output is ASCII-only, so NUL cannot occur inside it).  Failures print
 * "!ERROR <message>" in place of the text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pycompat.h"

int main(int argc, char **argv)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int indent = argc > 1 ? atoi(argv[1]) : 2;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t jerr;
        struct pw_error err = {0};
        char *text = NULL;
        json_t *v = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!v)
            printf("!ERROR jansson: %s", jerr.text);
        else if (py_json_dumps(v, indent, &text, &err) < 0)
            printf("!ERROR pyjson: %s", err.msg);
        else
            fputs(text, stdout);
        putchar('\0');
        free(text);
        json_decref(v);
    }
    free(line);
    return fflush(stdout) == 0 ? 0 : 1;
}
