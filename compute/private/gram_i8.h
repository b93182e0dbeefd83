/* gram_i8.h - gram.h's GRAM_VNNI_I8 kind, for gram.c only: gram.c's entry points pass
 * a gram of that kind here (see gram.h for what each call does). */
#ifndef PW_GRAM_I8_H
#define PW_GRAM_I8_H

#include "gram.h"

int gram_i8_usable(void);
int gram_i8_init(struct gram *g, size_t cap, size_t block_rows);
void gram_i8_free(struct gram *g);
void gram_i8_pack(const struct gram *g, int t, int T);
void gram_i8_block(const struct gram *g, int t, int T);
void gram_i8_rows(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2, float *out,
                  size_t ld, const struct gram_filter *f);

#endif
