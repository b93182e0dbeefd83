/* log.c - JSON-lines logger (see header). */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "pw_error.h"

static const char *level_name(int level)
{
    if (level >= PW_LOG_CRITICAL)
        return "critical";
    if (level >= PW_LOG_ERROR)
        return "error";
    if (level >= PW_LOG_WARNING)
        return "warning";
    if (level >= PW_LOG_INFO)
        return "info";
    return "debug";
}

int pw_log_parse_level(const char *name, int *level)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"debug", PW_LOG_DEBUG},  {"info", PW_LOG_INFO},   {"warning", PW_LOG_WARNING},
                  {"warn", PW_LOG_WARNING}, {"error", PW_LOG_ERROR}, {"critical", PW_LOG_CRITICAL}};

    for (size_t i = 0; name && i < sizeof levels / sizeof levels[0]; i++) {
        if (!strcasecmp(name, levels[i].name)) {
            *level = levels[i].level;
            return 0;
        }
    }
    return PW_EINVAL;
}

void pw_log_event(const struct pw_log *log, int level, const char *event, json_t *fields,
                  const char *msg)
{
    json_t *line;
    struct timeval tv;
    struct tm tm;
    char ts[64], *text;
    size_t len;

    if (!log || level < log->min_level) {
        json_decref(fields);
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    line = json_object();
    if (!line) {
        json_decref(fields);
        return;
    }
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_name(level)));
    json_object_set_new(line, "event", json_string(event));
    if (msg) {
        json_t *m = json_string(msg);
        json_object_set_new(line, "msg", m ? m : json_string("(message not valid UTF-8)"));
    }
    if (json_is_object(fields))
        json_object_update(line, fields);
    json_decref(fields);
    if (!(line = secrets_scrub_json(log->secrets, line)))
        return;
    text = json_dumps(line, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(line);
    if (!text)
        return;
    len = strlen(text);
    text[len] = '\n'; /* json_dumps' NUL becomes the newline; we track the length */
    if (write(log->fd, text, len + 1) < 0) {
        /* nowhere left to report a failed log write */
    }
    free(text);
}
