# One R reference run, in its own process so its peak RSS is its own (the R twin of ref.py):
#     Rscript ref.R METHOD INPUT.f32 DIM OUT.f32 THREADS SGD_THREADS TMPDIR
# METHOD: uwot (uwot::umap, set to umap-learn's / the Python task's UMAP call) or rtsne
# (Rtsne::Rtsne, set as close to the task's sklearn TSNE call as Rtsne allows).  Reads the
# bench's row-major little-endian float32 matrix, writes the n x 2 embedding as row-major
# little-endian float32, prints the seconds of the method call (for rtsne: sklearn-style
# PCA init + Rtsne, since sklearn's fit_transform includes its PCA init) on stdout.
# Installed by bench/compute/install-r.sh; bench only.
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 7) stop("usage: ref.R METHOD INPUT.f32 DIM OUT.f32 THREADS SGD_THREADS TMPDIR")
method <- args[1]
dim <- as.integer(args[3])
threads <- as.integer(args[5])
sgd_threads <- as.integer(args[6])
tmpdir <- args[7]

n_values <- file.size(args[2]) %/% 4
con <- file(args[2], "rb")
v <- readBin(con, what = "numeric", size = 4, endian = "little", n = n_values)
close(con)
x <- matrix(v, ncol = dim, byrow = TRUE) # file is row-major; R is column-major
rm(v)
invisible(gc())

if (method == "uwot") {
  suppressPackageStartupMessages(library(uwot))
  set.seed(42)
  t0 <- proc.time()[["elapsed"]]
  y <- uwot::umap(x,
    n_neighbors = 15, n_components = 2, metric = "cosine",
    min_dist = 0.1, # umap-learn default; uwot's own default is 0.01
    spread = 1, n_epochs = NULL, # NULL: 500 epochs if n <= 10000 else 200, umap-learn's rule
    learning_rate = 1, init = "spectral", negative_sample_rate = 5,
    set_op_mix_ratio = 1, local_connectivity = 1, repulsion_strength = 1,
    nn_method = NULL, # uwot default for cosine: Annoy (50 trees) at every n; exact FNN is euclidean-only
    n_threads = threads, n_sgd_threads = sgd_threads, tmpdir = tmpdir,
    fast_sgd = FALSE, approx_pow = FALSE, verbose = FALSE
  )
  secs <- proc.time()[["elapsed"]] - t0
} else if (method == "rtsne") {
  suppressPackageStartupMessages(library(Rtsne))
  set.seed(42)
  t0 <- proc.time()[["elapsed"]]
  # sklearn's init="pca": the first two principal components of X, scaled so that the
  # first column has standard deviation 1e-4.  (sklearn uses randomized SVD; this is exact.)
  xc <- sweep(x, 2, colMeans(x))
  e <- eigen(crossprod(xc), symmetric = TRUE)
  y0 <- xc %*% e$vectors[, 1:2]
  rm(xc, e)
  y0 <- y0 / sd(y0[, 1]) * 1e-4
  r <- Rtsne::Rtsne(x,
    dims = 2, perplexity = 30, theta = 0.5, max_iter = 1000, eta = 200,
    exaggeration_factor = 12, momentum = 0.5, final_momentum = 0.8,
    # Rtsne skips early exaggeration when Y_init is given unless these are set:
    stop_lying_iter = 250, mom_switch_iter = 250, Y_init = y0,
    pca = FALSE, # sklearn does not reduce X to 50 dims first; Rtsne's default does
    normalize = TRUE, # centre + scale by max |x|: leaves the perplexity-calibrated P unchanged
    check_duplicates = FALSE, num_threads = threads, verbose = FALSE
  )
  y <- r$Y
  secs <- proc.time()[["elapsed"]] - t0
} else {
  stop(paste("unknown method", method))
}

cat(sprintf("%.3f\n", secs))
con <- file(args[4], "wb")
writeBin(as.vector(t(y)), con, size = 4, endian = "little")
close(con)
