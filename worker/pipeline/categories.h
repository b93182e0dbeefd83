/* categories.h - the Python task's colour categories, byte for byte.
 *
 * categories_label() derives one point's category label from its Qdrant payload
 * following `_derive_category_label` in packages/webui/tasks/projection.py:
 *   document_id  first truthy of doc_id, document_id, chunk_id, source_id, as str()
 *   source_dir   directory of source_path | path | metadata.source_path (pathlib rules)
 *   filetype     mime_type | metadata.mime_type lower-cased, else the path's suffix
 *   age_bucket   first truthy timestamp (ingested_at, created_at, updated_at, timestamp,
 *                then the same under metadata): seconds, ms (>= 1e12), us (>= 1e14) or
 *                ISO-8601 text, bucketed against `now` (future, <=1d ... >1y)
 * and "unknown" whenever the rule finds nothing.
 *
 * A category_table assigns indexes in first-seen order, caps them at 255 with bucket
 * 255 "Other", counts points per index and (document_id only) maps each document id to
 * its first index, exactly as the Python loop does; then builds the legend,
 * category_map and category_counts JSON for meta.json.  The table owns its memory. */
#ifndef PW_CATEGORIES_H
#define PW_CATEGORIES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_error.h"
#include "qdrant.h"

#define CATEGORY_OVERFLOW_INDEX 255

enum color_by { COLOR_BY_DOCUMENT_ID, COLOR_BY_SOURCE_DIR, COLOR_BY_FILETYPE, COLOR_BY_AGE_BUCKET };

/* "document_id" | "source_dir" | "filetype" | "age_bucket" (case-insensitive);
 * anything else, NULL or empty gives COLOR_BY_DOCUMENT_ID, as the Python task does. */
enum color_by categories_parse_color_by(const char *text);
const char *categories_color_by_name(enum color_by c);

/* The point's label, whole (Python keeps any length), malloc'd and owned by the caller;
 * for document_id with an id, *doc_id is set to a malloc'd copy of it (else NULL).
 * NULL when out of memory (*doc_id is then NULL).  `payload` may be NULL. */
char *categories_label(json_t *payload, enum color_by color_by, double now_unix, char **doc_id);

/* The payload fields the rules read (qdrant_field_key's names, META_* ones under
 * "metadata") of point i of a fetched matrix, as the dict the Python task's rules see.
 * The scroll parser keeps a container's emptiness, not its members, which is all
 * truthiness needs: a non-empty list or dict arrives as [true] / {"": true}, so str() of
 * one (a document id that is a dict) is the one value this cannot reproduce.  New
 * reference, owned by the caller; NULL only when out of memory. */
json_t *categories_point_payload(const struct qdrant_matrix *m, size_t i);

struct category_table;

int category_table_new(struct category_table **out, enum color_by color_by, struct pw_error *err);
void category_table_free(struct category_table *t);
/* Index for this point's label (0..254, or 255 once 255 labels exist).  Returns <0 on
 * allocation failure. */
int category_table_add(struct category_table *t, const char *label, const char *doc_id);
int category_table_overflowed(const struct category_table *t);
json_t *category_table_legend(const struct category_table *t);  /* [{index,label,count}] */
json_t *category_table_counts(const struct category_table *t);  /* {"idx": count} */
json_t *category_table_doc_map(const struct category_table *t); /* {doc_id: idx} */

#endif
