/* signals.h - SIGTERM/SIGINT/SIGQUIT delivered as bytes on a pipe.
 *
 * A process-directed signal may land on any thread, including threads a runtime
 * started before main (the sanitizers do), so masking it is not enough: a handler
 * writes the signal number into a non-blocking self-pipe and the consumer loop
 * poll()s the read end.  The write end lives in one static variable set once by
 * signals_install() - the only process-wide state, as a signal handler needs it. */
#ifndef PW_SIGNALS_H
#define PW_SIGNALS_H

#include "pw_error.h"

/* Installs handlers for SIGTERM, SIGINT and SIGQUIT; *read_fd becomes readable when
 * one arrived. */
int signals_install(int *read_fd, struct pw_error *err);
/* The same for the n signals in sigs (a task process listens to SIGUSR1 only). */
int signals_install_set(const int *sigs, size_t n, int *read_fd, struct pw_error *err);
/* The next pending signal number, or 0 when none is pending. */
int signals_next(int read_fd);

#endif
