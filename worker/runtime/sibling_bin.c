/* sibling_bin.c - find a sibling binary (see header). */
#include "sibling_bin.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sibling_bin_find(const char *name, const char *env_var, char *buf, size_t cap,
                     struct pw_error *err)
{
    const char *env = getenv(env_var);
    char self[PATH_MAX];
    ssize_t n;

    if (env && *env) {
        snprintf(buf, cap, "%s", env);
    } else {
        n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0)
            return pw_error_set(err, PW_EIO, "cannot find my own executable: %s", strerror(errno));
        self[n] = '\0';
        snprintf(buf, cap, "%s/%s", dirname(self), name);
    }
    if (access(buf, X_OK))
        return pw_error_set(err, PW_ENOTFOUND, "%s is missing or not executable (set %s)", buf,
                            env_var);
    return 0;
}
