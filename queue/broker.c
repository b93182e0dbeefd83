/* broker.c - rabbitmq-c connection driven like a Celery 5 consumer (see header).
 *
 * Everything happens on channel 1, but queue checks and declarations, which happen on
 * channel 2 before consuming (a refused one closes its channel).  Frames are read one at a time
 * with amqp_simple_wait_frame_noblock() and a zero timeout, so the caller's poll() loop stays in
 * charge of waiting; once a basic.deliver arrives the rest of that message is read with
 * amqp_read_message(), which waits for it (it is already in flight). Every amqp_rpc_reply_t is
 * checked; server-side closes are answered with close-ok and reported with the broker's reply text.
 */
#include "broker.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "amqp_json.h"
#include "broker_url.h"

#define BROKER_CHANNEL 1
#define PROBE_CHANNEL  2 /* queue checks and declarations, closed after each */

struct broker {
    amqp_connection_state_t conn;
    int connected;        /* socket open and logged in */
    int channel_ok;       /* channel 1 open */
    char **consumer_tags; /* consumer_tags[i] reads queues[i]; NULL while cancelled */
    char **queues;
    size_t n_queues;
    int consuming;
    int per_consumer_qos; /* basic.qos global=false (a quorum queue is consumed) */
    int close_code;       /* reply code of the broker's last channel or connection close */
    uint64_t published;   /* publishes since confirm.select (publisher confirms) */
    uint64_t confirmed;   /* highest delivery tag the broker acknowledged */
    int confirming;       /* confirm.select done */
};

/* A delivered message kept whole so it can be published again unchanged. */
struct broker_message {
    amqp_message_t msg; /* properties (with headers) in msg.pool, body malloc'ed */
};

static char *bytes_dup(amqp_bytes_t b)
{
    char *s = malloc(b.len + 1);
    if (s) {
        if (b.len)
            memcpy(s, b.bytes, b.len);
        s[b.len] = '\0';
    }
    return s;
}

static int reply_error(struct broker *b, amqp_rpc_reply_t r, const char *what, struct pw_error *err)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        return pw_error_set(err, PW_EPROTO, "%s: missing RPC reply", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        b->connected = 0;
        return pw_error_set(err, PW_EUNAVAIL, "%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            amqp_connection_close_ok_t ok = {0};
            amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            b->connected = 0;
            b->close_code = m->reply_code;
            return pw_error_set(err, m->reply_code == 403 ? PW_EDENIED : PW_EUNAVAIL,
                                "%s: broker closed the connection: %u %.*s", what, m->reply_code,
                                (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            amqp_channel_close_ok_t ok = {0};
            amqp_send_method(b->conn, BROKER_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
            b->channel_ok = 0;
            b->close_code = m->reply_code;
            return pw_error_set(err, PW_EPROTO, "%s: broker closed the channel: %u %.*s", what,
                                m->reply_code, (int)m->reply_text.len,
                                (const char *)m->reply_text.bytes);
        }
        return pw_error_set(err, PW_EPROTO, "%s: unexpected server method 0x%08x", what,
                            r.reply.id);
    }
    return pw_error_set(err, PW_EINTERNAL, "%s: unknown reply type", what);
}

static int check_rpc(struct broker *b, const char *what, struct pw_error *err)
{
    return reply_error(b, amqp_get_rpc_reply(b->conn), what, err);
}

static int status_error(struct broker *b, int status, const char *what, struct pw_error *err)
{
    if (status == AMQP_STATUS_OK)
        return 0;
    b->connected = 0;
    return pw_error_set(err, PW_EUNAVAIL, "%s: %s", what, amqp_error_string2(status));
}

static int open_socket(struct broker *b, const struct broker_options *opt,
                       const struct broker_url *u, struct pw_error *err)
{
    amqp_socket_t *sock;
    struct timeval tv;
    int status;

    if (u->tls) {
        sock = amqp_ssl_socket_new(b->conn);
        if (!sock)
            return pw_error_set(err, PW_ENOMEM, "cannot create TLS socket");
        amqp_ssl_socket_set_verify_peer(sock, !opt->tls_insecure);
        amqp_ssl_socket_set_verify_hostname(sock, !opt->tls_insecure);
        if (opt->tls_ca_file && amqp_ssl_socket_set_cacert(sock, opt->tls_ca_file))
            return pw_error_set(err, PW_EINVAL, "cannot load CA file %s", opt->tls_ca_file);
    } else {
        sock = amqp_tcp_socket_new(b->conn);
        if (!sock)
            return pw_error_set(err, PW_ENOMEM, "cannot create TCP socket");
    }
    tv.tv_sec = opt->connect_timeout_ms / 1000;
    tv.tv_usec = (opt->connect_timeout_ms % 1000) * 1000;
    status =
        amqp_socket_open_noblock(sock, u->host, u->port, opt->connect_timeout_ms > 0 ? &tv : NULL);
    if (status != AMQP_STATUS_OK)
        return pw_error_set(err, PW_EUNAVAIL, "cannot connect to %s:%d: %s", u->host, u->port,
                            amqp_error_string2(status));
    return 0;
}

/* The probe channel's reply to the last RPC: 0 done, PROBE_REFUSED when the broker
 * refused it with 404 NOT_FOUND or 406 PRECONDITION_FAILED (the channel is then closed and
 * answered), a negative PW_E* code for anything else. */
#define PROBE_REFUSED 1

static int probe_reply(struct broker *b, const char *what, struct pw_error *err)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);

    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(b->conn, PROBE_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        if (m->reply_code == AMQP_NOT_FOUND || m->reply_code == AMQP_PRECONDITION_FAILED)
            return PROBE_REFUSED;
        return pw_error_set(err, PW_EPROTO, "%s: broker closed the channel: %u %.*s", what,
                            m->reply_code, (int)m->reply_text.len,
                            (const char *)m->reply_text.bytes);
    }
    return reply_error(b, r, what, err);
}

static int probe_open(struct broker *b, struct pw_error *err)
{
    amqp_channel_open(b->conn, PROBE_CHANNEL);
    return check_rpc(b, "channel.open", err);
}

static int probe_close(struct broker *b, struct pw_error *err)
{
    return reply_error(b, amqp_channel_close(b->conn, PROBE_CHANNEL, AMQP_REPLY_SUCCESS),
                       "channel.close", err);
}

/* Celery's declaration of a queue that does not exist yet: the durable queue (with
 * x-queue-type quorum when asked, as Celery 5.5's task_default_queue_type), a durable
 * direct exchange named like it, the binding with key = queue.  A refusal means someone
 * declared the queue or the exchange otherwise meanwhile: the queue exists, as they made
 * it, and is consumed so. */
static int declare_new_queue(struct broker *b, const char *q, int quorum, struct pw_error *err)
{
    amqp_bytes_t name = amqp_cstring_bytes(q);
    amqp_table_entry_t type = {amqp_cstring_bytes("x-queue-type"),
                               {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes("quorum")}}};
    amqp_table_t args = {quorum ? 1 : 0, quorum ? &type : NULL};
    int rc;

    amqp_queue_declare(b->conn, PROBE_CHANNEL, name, 0, 1, 0, 0, args);
    if ((rc = probe_reply(b, "queue.declare", err)))
        return rc == PROBE_REFUSED ? 0 : rc;
    amqp_exchange_declare(b->conn, PROBE_CHANNEL, name, amqp_cstring_bytes("direct"), 0, 1, 0, 0,
                          amqp_empty_table);
    if ((rc = probe_reply(b, "exchange.declare", err)))
        return rc == PROBE_REFUSED ? 0 : rc;
    amqp_queue_bind(b->conn, PROBE_CHANNEL, name, name, name, amqp_empty_table);
    if ((rc = probe_reply(b, "queue.bind", err)))
        return rc == PROBE_REFUSED ? 0 : rc;
    return probe_close(b, err);
}

/* A queue that exists is consumed as it is (quorum, dead-letter exchange, max length...:
 * declaring it with other arguments would be refused with 406); only a missing one is
 * declared.  Both happen on the probe channel, since a refused declaration closes its
 * channel and channel 1 must stay open. */
static int declare_queue(struct broker *b, const char *q, int quorum, struct pw_error *err)
{
    int rc;

    if ((rc = probe_open(b, err)))
        return rc;
    amqp_queue_declare(b->conn, PROBE_CHANNEL, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
    rc = probe_reply(b, "queue.declare passive", err);
    if (rc == 0)
        return probe_close(b, err);
    if (rc != PROBE_REFUSED || (rc = probe_open(b, err)))
        return rc;
    return declare_new_queue(b, q, quorum, err);
}

/* basic.qos is channel-wide (global) as Celery 5.2 sets it, or per consumer once the
 * channel consumes a quorum queue (RabbitMQ refuses global QoS there), as Celery 5.5
 * does.  Per-consumer prefetch reaches only consumers started after it is set. */
int broker_set_prefetch(struct broker *b, int prefetch_count, struct pw_error *err)
{
    if (prefetch_count < 0 || prefetch_count > 65535)
        return pw_error_set(err, PW_EINVAL, "prefetch count %d out of range", prefetch_count);
    amqp_basic_qos(b->conn, BROKER_CHANNEL, 0, (uint16_t)prefetch_count, !b->per_consumer_qos);
    return check_rpc(b, "basic.qos", err);
}

/* QoS, then one consumer per queue. */
static int start_consuming(struct broker *b, int prefetch_count, struct pw_error *err)
{
    int rc;

    if ((rc = broker_set_prefetch(b, prefetch_count, err)))
        return rc;
    return broker_resume_consumers(b, err);
}

/* One attempt of broker_connect; *close_code = the broker's reply code when it closed
 * the channel or the connection. */
static int connect_once(struct broker **out, const struct broker_options *opt, int per_consumer_qos,
                        int *close_code, struct pw_error *err)
{
    struct broker_url u;
    struct broker *b;
    amqp_rpc_reply_t r;
    int rc;

    *out = NULL;
    if ((rc = broker_url_parse(opt->url, &u, err)))
        return rc;
    b = calloc(1, sizeof *b);
    if (!b) {
        broker_url_free(&u);
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    }
    b->per_consumer_qos = per_consumer_qos;
    b->conn = amqp_new_connection();
    if (!b->conn) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = open_socket(b, opt, &u, err)))
        goto fail;
    r = amqp_login(b->conn, u.vhost, 0, 131072, opt->heartbeat_s, AMQP_SASL_METHOD_PLAIN, u.user,
                   u.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rc = reply_error(b, r, "login", err);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_CONNECTION_CLOSED)
            rc = pw_error_set(err, PW_EDENIED,
                              "login refused by broker (wrong user/password or vhost '%s'?)",
                              u.vhost);
        goto fail;
    }
    b->connected = 1;
    amqp_channel_open(b->conn, BROKER_CHANNEL);
    if ((rc = check_rpc(b, "channel.open", err)))
        goto fail;
    b->channel_ok = 1;
    b->consumer_tags = calloc(opt->n_queues ? opt->n_queues : 1, sizeof *b->consumer_tags);
    b->queues = calloc(opt->n_queues ? opt->n_queues : 1, sizeof *b->queues);
    if (!b->consumer_tags || !b->queues) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < opt->n_queues; i++) {
        if (!(b->queues[b->n_queues++] = strdup(opt->queues[i]))) {
            rc = pw_error_set(err, PW_ENOMEM, "out of memory");
            goto fail;
        }
        if ((rc = declare_queue(b, opt->queues[i], opt->quorum, err)))
            goto fail;
    }
    if ((rc = start_consuming(b, opt->prefetch_count, err)))
        goto fail;
    broker_url_free(&u);
    *out = b;
    return 0;
fail:
    *close_code = b->close_code;
    broker_url_free(&u);
    broker_free(b);
    return rc;
}

/* QoS is channel-wide first (or per consumer at once when new queues are declared
 * quorum).  RabbitMQ refuses to consume a quorum queue under global QoS by closing the
 * connection with 540 NOT_IMPLEMENTED; the second attempt then sets QoS per consumer. */
int broker_connect(struct broker **out, const struct broker_options *opt, struct pw_error *err)
{
    int close_code = 0;
    int rc = connect_once(out, opt, opt->quorum, &close_code, err);

    if (rc && !opt->quorum && close_code == AMQP_NOT_IMPLEMENTED)
        rc = connect_once(out, opt, 1, &close_code, err);
    return rc;
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    if (b->conn) {
        if (b->connected) {
            if (b->channel_ok)
                amqp_channel_close(b->conn, BROKER_CHANNEL, AMQP_REPLY_SUCCESS);
            amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(b->conn);
    }
    for (size_t i = 0; i < b->n_queues; i++) {
        free(b->consumer_tags[i]);
        free(b->queues[i]);
    }
    free(b->consumer_tags);
    free(b->queues);
    free(b);
}

int broker_fd(struct broker *b)
{
    return amqp_get_sockfd(b->conn);
}

int broker_has_buffered(struct broker *b)
{
    return amqp_frames_enqueued(b->conn) || amqp_data_in_buffer(b->conn);
}

static char *queue_of(const struct broker *b, const char *consumer_tag)
{
    for (size_t i = 0; consumer_tag && i < b->n_queues; i++)
        if (b->consumer_tags[i] && !strcmp(b->consumer_tags[i], consumer_tag))
            return strdup(b->queues[i]);
    return strdup(""); /* a consumer cancelled since: the delivery is requeued anyway */
}

static int read_delivery(struct broker *b, const amqp_basic_deliver_t *d,
                         struct broker_delivery *out, struct pw_error *err)
{
    amqp_message_t msg;
    amqp_rpc_reply_t r;
    amqp_basic_properties_t *p;
    int rc;

    memset(out, 0, sizeof *out);
    out->delivery_tag = d->delivery_tag;
    out->redelivered = d->redelivered;
    out->exchange = bytes_dup(d->exchange);
    out->routing_key = bytes_dup(d->routing_key);
    out->consumer_tag = bytes_dup(d->consumer_tag);

    r = amqp_read_message(b->conn, BROKER_CHANNEL, &msg, 0);
    if ((rc = reply_error(b, r, "reading message", err))) {
        broker_delivery_free(out);
        return rc;
    }
    p = &msg.properties;
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        out->content_type = bytes_dup(p->content_type);
    if (p->_flags & AMQP_BASIC_CONTENT_ENCODING_FLAG)
        out->content_encoding = bytes_dup(p->content_encoding);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        out->correlation_id = bytes_dup(p->correlation_id);
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        out->reply_to = bytes_dup(p->reply_to);
    out->headers =
        (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? amqp_table_to_json(&p->headers) : json_object();
    out->body = bytes_dup(msg.body);
    out->body_len = msg.body.len;
    out->queue = queue_of(b, out->consumer_tag);
    out->message = malloc(sizeof *out->message);
    if (out->message)
        out->message->msg = msg;
    else
        amqp_destroy_message(&msg);
    if (!out->body || !out->headers || !out->queue || !out->message) {
        broker_delivery_free(out);
        return pw_error_set(err, PW_ENOMEM, "out of memory reading a message");
    }
    return 1;
}

int broker_next(struct broker *b, struct broker_delivery *out, struct pw_error *err)
{
    amqp_frame_t frame;
    struct timeval zero = {0, 0};
    int status, rc;

    if (!b->connected || !b->channel_ok)
        return pw_error_set(err, PW_EUNAVAIL, "broker connection is closed");
    amqp_maybe_release_buffers(b->conn);
    status = amqp_simple_wait_frame_noblock(b->conn, &frame, &zero);
    if (status == AMQP_STATUS_TIMEOUT)
        return 0;
    if ((rc = status_error(b, status, "reading from broker", err)))
        return rc;
    if (frame.frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (frame.payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t d = *(amqp_basic_deliver_t *)frame.payload.method.decoded;
        return read_delivery(b, &d, out, err);
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_message_t msg;
        amqp_rpc_reply_t r = amqp_read_message(b->conn, frame.channel, &msg, 0);
        if ((rc = reply_error(b, r, "reading returned message", err)))
            return rc;
        amqp_destroy_message(&msg);
        return 0;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_rpc_reply_t r;
        memset(&r, 0, sizeof r);
        r.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
        r.reply = frame.payload.method;
        return reply_error(b, r, "consuming", err);
    }
    case AMQP_BASIC_CANCEL_METHOD:
        b->channel_ok = 0;
        return pw_error_set(err, PW_EUNAVAIL, "broker cancelled our consumer (queue deleted?)");
    default:
        return 0;
    }
}

void broker_delivery_free(struct broker_delivery *d)
{
    if (!d)
        return;
    broker_message_free(d->message);
    free(d->queue);
    free(d->exchange);
    free(d->routing_key);
    free(d->consumer_tag);
    free(d->content_type);
    free(d->content_encoding);
    free(d->correlation_id);
    free(d->reply_to);
    json_decref(d->headers);
    free(d->body);
    memset(d, 0, sizeof *d);
}

struct celery_delivery_in broker_delivery_view(const struct broker_delivery *d)
{
    struct celery_delivery_in in;

    in.content_type = d->content_type;
    in.content_encoding = d->content_encoding;
    in.correlation_id = d->correlation_id;
    in.reply_to = d->reply_to;
    in.headers = d->headers;
    in.body = d->body;
    in.body_len = d->body_len;
    return in;
}

int broker_ack(struct broker *b, uint64_t tag, struct pw_error *err)
{
    return status_error(b, amqp_basic_ack(b->conn, BROKER_CHANNEL, tag, 0), "basic.ack", err);
}

int broker_reject(struct broker *b, uint64_t tag, int requeue, struct pw_error *err)
{
    return status_error(b, amqp_basic_reject(b->conn, BROKER_CHANNEL, tag, requeue), "basic.reject",
                        err);
}

int broker_cancel_consumers(struct broker *b, struct pw_error *err)
{
    int rc;

    for (size_t i = 0; i < b->n_queues; i++) {
        if (!b->consumer_tags[i])
            continue;
        amqp_basic_cancel(b->conn, BROKER_CHANNEL, amqp_cstring_bytes(b->consumer_tags[i]));
        if ((rc = check_rpc(b, "basic.cancel", err)))
            return rc;
        free(b->consumer_tags[i]);
        b->consumer_tags[i] = NULL;
    }
    b->consuming = 0;
    return 0;
}

int broker_resume_consumers(struct broker *b, struct pw_error *err)
{
    int rc;

    for (size_t i = 0; i < b->n_queues; i++) {
        amqp_basic_consume_ok_t *ok;
        if (b->consumer_tags[i])
            continue;
        ok = amqp_basic_consume(b->conn, BROKER_CHANNEL, amqp_cstring_bytes(b->queues[i]),
                                amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        if ((rc = check_rpc(b, "basic.consume", err)))
            return rc;
        if (!(b->consumer_tags[i] = bytes_dup(ok->consumer_tag)))
            return pw_error_set(err, PW_ENOMEM, "out of memory");
    }
    b->consuming = 1;
    return 0;
}

int broker_consuming(const struct broker *b)
{
    return b->consuming;
}

int broker_publish(struct broker *b, const char *exchange, const char *routing_key,
                   const struct broker_publish_props *props, const char *body, size_t len,
                   struct pw_error *err)
{
    amqp_basic_properties_t p;
    amqp_bytes_t payload;

    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
               AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    p.content_type =
        amqp_cstring_bytes(props && props->content_type ? props->content_type : "application/json");
    p.content_encoding =
        amqp_cstring_bytes(props && props->content_encoding ? props->content_encoding : "utf-8");
    p.delivery_mode = props && props->delivery_mode ? (uint8_t)props->delivery_mode : 1;
    p.priority = 0;
    if (props && props->correlation_id) {
        p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        p.correlation_id = amqp_cstring_bytes(props->correlation_id);
    }
    if (props && props->reply_to) {
        p._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        p.reply_to = amqp_cstring_bytes(props->reply_to);
    }
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    if (props && props->headers) {
        p._flags |= AMQP_BASIC_HEADERS_FLAG;
        if (amqp_json_to_table(props->headers, &pool, &p.headers)) {
            empty_amqp_pool(&pool);
            return pw_error_set(err, PW_EINVAL, "message headers are not an object (or no memory)");
        }
    }
    payload.bytes = (void *)body;
    payload.len = len;
    int rc = status_error(b,
                          amqp_basic_publish(b->conn, BROKER_CHANNEL,
                                             amqp_cstring_bytes(exchange ? exchange : ""),
                                             amqp_cstring_bytes(routing_key), 0, 0, &p, payload),
                          "basic.publish", err);
    empty_amqp_pool(&pool);
    if (rc == 0 && b->confirming)
        b->published++;
    return rc;
}

struct broker_message *broker_delivery_take_message(struct broker_delivery *d)
{
    struct broker_message *m = d->message;

    d->message = NULL;
    return m;
}

void broker_message_free(struct broker_message *m)
{
    if (!m)
        return;
    amqp_destroy_message(&m->msg);
    free(m);
}

/* m's headers with every `set` entry replaced or added; entries point into m and set. */
static amqp_table_entry_t *headers_with(const amqp_basic_properties_t *p,
                                        const struct broker_header_int *set, size_t n_set,
                                        int *n_out)
{
    int n_old = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? p->headers.num_entries : 0, n = 0;
    amqp_table_entry_t *e = calloc((size_t)n_old + n_set + 1, sizeof *e);

    if (!e)
        return NULL;
    for (int i = 0; i < n_old; i++) {
        const amqp_table_entry_t *old = &p->headers.entries[i];
        int replaced = 0;
        for (size_t k = 0; k < n_set; k++)
            replaced |= old->key.len == strlen(set[k].name) &&
                        !memcmp(old->key.bytes, set[k].name, old->key.len);
        if (!replaced)
            e[n++] = *old;
    }
    for (size_t k = 0; k < n_set; k++) {
        e[n].key = amqp_cstring_bytes(set[k].name);
        if (set[k].text) {
            e[n].value.kind = AMQP_FIELD_KIND_UTF8;
            e[n++].value.value.bytes = amqp_cstring_bytes(set[k].text);
            continue;
        }
        e[n].value.kind = AMQP_FIELD_KIND_I64;
        e[n++].value.value.i64 = set[k].value;
    }
    *n_out = n;
    return e;
}

int broker_republish(struct broker *b, const struct broker_message *m, const char *queue,
                     const struct broker_header_int *set, size_t n_set, struct pw_error *err)
{
    amqp_basic_properties_t p = m->msg.properties;
    amqp_table_entry_t *entries = headers_with(&p, set, n_set, &p.headers.num_entries);
    int rc;

    if (!entries)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    p._flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers.entries = entries;
    rc = status_error(b,
                      amqp_basic_publish(b->conn, BROKER_CHANNEL, amqp_cstring_bytes(""),
                                         amqp_cstring_bytes(queue), 0, 0, &p, m->msg.body),
                      "basic.publish", err);
    free(entries);
    return rc;
}

/* ---- Celery's remote control and events (see broker.h) ----------------------------- */

int broker_declare_exchange(struct broker *b, const char *name, const char *type, int durable,
                            struct pw_error *err)
{
    amqp_exchange_declare(b->conn, BROKER_CHANNEL, amqp_cstring_bytes(name),
                          amqp_cstring_bytes(type), 0, durable ? 1 : 0, 0, 0, amqp_empty_table);
    return check_rpc(b, "exchange.declare", err);
}

int broker_declare_transient_queue(struct broker *b, const char *queue, int expires_ms, int ttl_ms,
                                   const char *exchange, const char *routing_key,
                                   struct pw_error *err)
{
    amqp_table_entry_t e[2];
    amqp_table_t args = {0, e};
    amqp_bytes_t name = amqp_cstring_bytes(queue);
    int rc;

    if (expires_ms > 0) {
        e[args.num_entries].key = amqp_cstring_bytes("x-expires");
        e[args.num_entries].value.kind = AMQP_FIELD_KIND_I32;
        e[args.num_entries++].value.value.i32 = expires_ms;
    }
    if (ttl_ms > 0) {
        e[args.num_entries].key = amqp_cstring_bytes("x-message-ttl");
        e[args.num_entries].value.kind = AMQP_FIELD_KIND_I32;
        e[args.num_entries++].value.value.i32 = ttl_ms;
    }
    amqp_queue_declare(b->conn, BROKER_CHANNEL, name, 0, 0, 0, 1, args);
    if ((rc = check_rpc(b, "queue.declare", err)))
        return rc;
    amqp_queue_bind(b->conn, BROKER_CHANNEL, name, amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(routing_key), amqp_empty_table);
    return check_rpc(b, "queue.bind", err);
}

int broker_consume_noack(struct broker *b, const char *queue, char **tag_out, struct pw_error *err)
{
    amqp_basic_consume_ok_t *ok;
    int rc;

    ok = amqp_basic_consume(b->conn, BROKER_CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0,
                            1, 0, amqp_empty_table);
    if ((rc = check_rpc(b, "basic.consume", err)))
        return rc;
    if (!(*tag_out = bytes_dup(ok->consumer_tag)))
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    return 0;
}

int broker_cancel_tag(struct broker *b, const char *tag, struct pw_error *err)
{
    amqp_basic_cancel(b->conn, BROKER_CHANNEL, amqp_cstring_bytes(tag));
    return check_rpc(b, "basic.cancel", err);
}

static int queue_index(const struct broker *b, const char *queue)
{
    for (size_t i = 0; i < b->n_queues; i++)
        if (!strcmp(b->queues[i], queue))
            return (int)i;
    return -1;
}

int broker_add_queue(struct broker *b, const char *queue, struct pw_error *err)
{
    char **queues, **tags;
    int rc;

    if (queue_index(b, queue) >= 0)
        return 0;
    if ((rc = declare_queue(b, queue, b->per_consumer_qos, err)))
        return rc;
    queues = realloc(b->queues, (b->n_queues + 1) * sizeof *queues);
    if (queues)
        b->queues = queues;
    tags = queues ? realloc(b->consumer_tags, (b->n_queues + 1) * sizeof *tags) : NULL;
    if (tags)
        b->consumer_tags = tags;
    if (!queues || !tags || !(b->queues[b->n_queues] = strdup(queue)))
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    b->consumer_tags[b->n_queues++] = NULL;
    return b->consuming ? broker_resume_consumers(b, err) : 0;
}

int broker_remove_queue(struct broker *b, const char *queue, struct pw_error *err)
{
    int i = queue_index(b, queue), rc;

    if (i < 0)
        return 0;
    if (b->consumer_tags[i]) {
        if ((rc = broker_cancel_tag(b, b->consumer_tags[i], err)))
            return rc;
        free(b->consumer_tags[i]);
    }
    free(b->queues[i]);
    for (size_t k = (size_t)i; k + 1 < b->n_queues; k++) {
        b->queues[k] = b->queues[k + 1];
        b->consumer_tags[k] = b->consumer_tags[k + 1];
    }
    b->n_queues--;
    return 0;
}

int broker_declare_queue(struct broker *b, const char *queue, int quorum, struct pw_error *err)
{
    return declare_queue(b, queue, quorum, err);
}

int broker_parse_queue_type(const char *name, int *quorum, struct pw_error *err)
{
    if (!name || !*name || !strcmp(name, "classic"))
        *quorum = 0;
    else if (!strcmp(name, "quorum"))
        *quorum = 1;
    else
        return pw_error_set(err, PW_EINVAL, "queue type '%.64s' is not classic or quorum", name);
    return 0;
}

int broker_confirm_select(struct broker *b, struct pw_error *err)
{
    amqp_confirm_select(b->conn, BROKER_CHANNEL);
    int rc = check_rpc(b, "confirm.select", err);
    if (rc == 0) {
        b->confirming = 1;
        b->published = b->confirmed = 0;
    }
    return rc;
}

/* One frame's worth of confirm bookkeeping: 1 = progress, 0 = unrelated frame. */
static int read_confirm(struct broker *b, const amqp_frame_t *f, struct pw_error *err)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *ack = f->payload.method.decoded;
        if (ack->delivery_tag > b->confirmed)
            b->confirmed = ack->delivery_tag;
        return 1;
    }
    case AMQP_BASIC_NACK_METHOD:
        return pw_error_set(err, PW_EIO, "the broker refused a published message (basic.nack)");
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_rpc_reply_t r = {AMQP_RESPONSE_SERVER_EXCEPTION, f->payload.method, 0};
        return reply_error(b, r, "waiting for publisher confirms", err);
    }
    default:
        return 0;
    }
}

int broker_wait_confirms(struct broker *b, int timeout_ms, struct pw_error *err)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_frame_t f;

    if (!b->confirming)
        return pw_error_set(err, PW_EINVAL, "publisher confirms are not enabled");
    while (b->confirmed < b->published) {
        int status = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
        if (status == AMQP_STATUS_TIMEOUT)
            return pw_error_set(err, PW_ETIMEOUT, "the broker confirmed %llu of %llu messages",
                                (unsigned long long)b->confirmed, (unsigned long long)b->published);
        if (status != AMQP_STATUS_OK)
            return status_error(b, status, "waiting for publisher confirms", err);
        int rc = read_confirm(b, &f, err);
        if (rc < 0)
            return rc;
    }
    amqp_maybe_release_buffers(b->conn);
    return 0;
}
