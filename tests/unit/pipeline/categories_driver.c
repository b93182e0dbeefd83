/* categories_driver - feeds payloads through worker/pipeline/categories and prints the result,
 * for test_categories.py to compare with the Python task's own helpers.
 * stdin: one JSON object per line {"now": unix_s, "color_by": "...", "payloads": [...]}
 * stdout: one JSON object per line {"labels", "categories", "legend", "category_counts",
 *         "category_map"} */
#include <stdio.h>
#include <stdlib.h>

#include "categories.h"

static int run_case(json_t *c)
{
    const char *color = json_string_value(json_object_get(c, "color_by"));
    double now = json_number_value(json_object_get(c, "now"));
    enum color_by cb = categories_parse_color_by(color);
    struct category_table *t;
    struct pw_error err;
    json_t *payloads = json_object_get(c, "payloads"), *p, *out, *labels, *cats;
    size_t i;
    char *text;

    if (category_table_new(&t, cb, &err))
        return 1;
    labels = json_array();
    cats = json_array();
    json_array_foreach(payloads, i, p)
    {
        char *doc, *label = categories_label(p, cb, now, &doc);
        if (!label)
            return 1;
        json_array_append_new(labels, json_string(label));
        json_array_append_new(cats, json_integer(category_table_add(t, label, doc)));
        free(label);
        free(doc);
    }
    out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:s}", "labels", labels, "categories", cats,
                    "legend", category_table_legend(t), "category_counts", category_table_counts(t),
                    "category_map", category_table_doc_map(t), "color_by",
                    categories_color_by_name(cb));
    text = json_dumps(out, JSON_COMPACT);
    puts(text);
    free(text);
    json_decref(out);
    category_table_free(t);
    return 0;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;

    while (getline(&line, &cap, stdin) > 0) {
        json_error_t jerr;
        json_t *c = json_loads(line, 0, &jerr);
        if (!c) {
            fprintf(stderr, "bad input line: %s\n", jerr.text);
            rc = 1;
            break;
        }
        rc |= run_case(c);
        json_decref(c);
    }
    free(line);
    return rc;
}
