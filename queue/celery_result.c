/* celery_result.c - encode rpc:// result bodies (see header). */
#include "celery_result.h"

char *celery_result_body(const char *task_id, const char *status, json_t *result,
                         const char *traceback)
{
    json_t *obj = json_object();
    char *text;

    if (!obj)
        return NULL;
    json_object_set_new(obj, "task_id", json_string(task_id ? task_id : ""));
    json_object_set_new(obj, "status", json_string(status));
    json_object_set(obj, "result", result ? result : json_null());
    json_object_set_new(obj, "traceback", traceback ? json_string(traceback) : json_null());
    json_object_set_new(obj, "children", json_array());
    text = json_dumps(obj, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(obj);
    return text;
}

json_t *celery_exception(const char *exc_type, const char *exc_module, const char *message)
{
    json_t *obj = json_object();

    if (!obj)
        return NULL;
    json_object_set_new(obj, "exc_type", json_string(exc_type));
    json_object_set_new(obj, "exc_message", json_pack("[s]", message ? message : ""));
    json_object_set_new(obj, "exc_module", exc_module ? json_string(exc_module) : json_null());
    return obj;
}
