/* fault.c - fault points for the reliability tests (see header). */
#include "fault.h"

#ifdef PW_TEST_TASKS
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 1 when this call is the one allowed to fire (no PW_FAULT_ONCE, or its file is new). */
static int claim_once(void)
{
    const char *once = getenv("PW_FAULT_ONCE");
    int fd;

    if (!once || !*once)
        return 1;
    fd = open(once, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

void pw_fault_point(const char *step)
{
    const char *want = getenv("PW_FAULT_POINT"), *colon;
    int whole_worker;

    if (!want || !(colon = strchr(want, ':')) || strcmp(colon + 1, step))
        return;
    whole_worker = !strncmp(want, "worker:", 7);
    if (!whole_worker && strncmp(want, "task:", 5))
        return;
    if (!claim_once())
        return;
    /* A task process knows it is one by PW_TASK_PROCESS (set by task_subprocess). */
    if (whole_worker && getenv("PW_TASK_PROCESS"))
        kill(getppid(), SIGKILL);
    raise(SIGKILL);
}
#else
void pw_fault_point(const char *step)
{
    (void)step;
}
#endif
