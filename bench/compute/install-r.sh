#!/bin/sh
# Bench-only: installs R with uwot and Rtsne (Debian packages) so bench/compute/run.py can
# compare against them.  Deliberately not in deploy/install-deps.sh: neither CI nor
# deployments need R.  Run as root.  r-cran-uwot and r-cran-rtsne pull in r-base-core and
# their R dependencies (Rcpp, RcppAnnoy, irlba, FNN, ...); no recommends.  codetools only
# silences a warning RcppAnnoy prints on every load without it.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends r-base-core r-cran-uwot r-cran-rtsne r-cran-codetools
Rscript -e 'cat("uwot", format(packageVersion("uwot")), "Rtsne", format(packageVersion("Rtsne")), "\n")'
