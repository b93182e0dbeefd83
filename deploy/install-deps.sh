#!/usr/bin/env bash
# install-deps.sh - install everything projection-worker needs to build, test and benchmark,
# from Debian 12's packages.  Run as root; safe to re-run.  Used by the README's two
# commands and by .ci/run.
set -euo pipefail

PACKAGES=(
    # build
    build-essential cmake pkg-config clang-format
    # libraries the worker links
    librabbitmq-dev libpq-dev libopenblas-dev liblapacke-dev libjansson-dev
    # the pthread variant named: its static archive goes into the task and project binaries
    libopenblas-pthread-dev
    libcurl4-openssl-dev libssl-dev libyajl-dev libfftw3-dev libmicrohttpd-dev
    # services the tests and the quick start run locally
    rabbitmq-server postgresql
    # the Python side: the real Celery client and the references we compare against
    python3-celery python3-numpy python3-sklearn umap-learn
    # tests of /metrics: the Prometheus text parser
    python3-prometheus-client
    # checks
    valgrind procps openssl ca-certificates
    # tests/deploy: PyYAML for the manifests (only a Recommends of python3-kombu today) and
    # systemd-analyze for the units (not in a minimal Debian 12 image)
    python3-yaml systemd
    # fuzzing (tests/fuzz/run.sh): clang with libFuzzer + sanitizer runtimes, clang's OpenMP,
    # llvm-symbolizer for the stack traces
    clang libclang-rt-14-dev libomp-dev llvm
)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (it calls apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Debian starts installed services by default; we start our own on private ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q
apt-get install -y -q "${PACKAGES[@]}"
