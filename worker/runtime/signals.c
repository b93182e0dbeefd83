/* signals.c - self-pipe signal delivery (see header). */
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int signal_pipe_write_fd = -1;

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;

    if (write(signal_pipe_write_fd, &b, 1) < 0) {
        /* pipe full: a signal is already pending, which is all the loop needs */
    }
    errno = saved;
}

int signals_install(int *read_fd, struct pw_error *err)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGQUIT};
    return signals_install_set(sigs, sizeof sigs / sizeof sigs[0], read_fd, err);
}

int signals_install_set(const int *sigs, size_t n, int *read_fd, struct pw_error *err)
{
    struct sigaction sa;
    int fds[2];

    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC))
        return pw_error_set(err, PW_EIO, "cannot create signal pipe: %s", strerror(errno));
    signal_pipe_write_fd = fds[1];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < n; i++)
        if (sigaction(sigs[i], &sa, NULL))
            return pw_error_set(err, PW_EIO, "cannot install signal handler: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    *read_fd = fds[0];
    return 0;
}

int signals_next(int read_fd)
{
    unsigned char b;
    return read(read_fd, &b, 1) == 1 ? (int)b : 0;
}
