/* quality.h - how well a 2-D layout keeps the neighbourhoods of the original vectors.
 *
 * quality_trustworthiness is sklearn.manifold.trustworthiness (Venna & Kaski): 1 minus
 * the normalised rank excess of the layout's k nearest neighbours in the original
 * space.  quality_knn_preservation is the mean fraction of each point's k nearest
 * original neighbours that are also among its k nearest in the layout.  Both are exact
 * and cost O(n^2 (d + k)): call them on a subsample for large n.  Original-space
 * distances use the given metric, layout distances are euclidean.  Nothing is kept;
 * scratch memory is O(n) per thread. */
#ifndef PW_QUALITY_H
#define PW_QUALITY_H

#include <stddef.h>

#include "knn.h"
#include "pw_error.h"

struct quality_scores {
    double trustworthiness;
    double knn_preservation;
};

/* 0, PW_EINVAL (bad input, k < 1 or k >= n / 2 as sklearn requires), PW_ENOMEM. */
int quality_scores(const float *x, size_t n, size_t d, const float *y, size_t k,
                   enum knn_metric metric, int threads, struct quality_scores *out,
                   struct pw_error *err);

#endif
