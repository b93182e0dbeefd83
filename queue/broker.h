/* broker.h - one AMQP 0-9-1 connection to RabbitMQ, driven the way Celery 5 drives it.
 *
 * broker_connect() opens the connection (amqp:// or amqps://), logs in with SASL
 * PLAIN and opens channel 1.  Each task queue is first checked passively: one that
 * exists is consumed as it is, whatever its type and arguments (quorum, dead-letter
 * exchange, max length...), never re-declared; one that does not is declared as Celery
 * does (durable direct exchange named like the queue, durable queue, binding key = queue
 * name; no arguments, or x-queue-type quorum with options.quorum), so Python workers
 * and clients can share the queues.  Every declaration is durable and non-exclusive,
 * as RabbitMQ versions that refuse transient non-exclusive queues require.  Then
 * basic.qos(prefetch_count) and one manual-ack consumer per queue: QoS is channel-wide
 * (global, Celery 5.2) unless a quorum queue is consumed, where RabbitMQ refuses global
 * QoS and the prefetch is per consumer (Celery 5.5).  Such a queue is recognised by
 * that refusal (RabbitMQ closes the connection: broker_connect connects once more with
 * per-consumer QoS) or by options.quorum.
 *
 * The connection is single-threaded: only the thread that owns it calls these
 * functions.  broker_next() never blocks for long: it returns a delivery if one is
 * buffered or readable, 0 otherwise, and services heartbeats each time it is called
 * (call it at least every heartbeat/2 seconds; poll() on broker_fd() in between).
 * A negative return from any call means the connection or channel is gone: call
 * broker_free() and reconnect.  Deliveries own their memory (broker_delivery_free). */
#ifndef PW_BROKER_H
#define PW_BROKER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "celery_message.h"
#include "pw_error.h"

struct broker;
struct broker_message; /* a delivered message kept whole, see broker_republish */

struct broker_options {
    const char *url; /* amqp[s]://user:pass@host:port/vhost */
    const char *const *queues;
    size_t n_queues;
    int prefetch_count; /* basic.qos: per channel, or per consumer on quorum queues */
    int quorum;         /* declare missing queues as quorum queues (and QoS per consumer) */
    int heartbeat_s;    /* requested heartbeat; 0 disables */
    int connect_timeout_ms;
    const char *tls_ca_file; /* amqps: CA bundle; NULL = system default */
    int tls_insecure;        /* amqps: skip peer verification (testing only) */
};

struct broker_delivery {
    uint64_t delivery_tag;
    int redelivered;
    char *exchange, *routing_key, *consumer_tag;
    char *content_type, *content_encoding, *correlation_id, *reply_to;
    json_t *headers; /* object, never NULL */
    char *body;      /* NUL-terminated copy */
    size_t body_len;
    char *queue;                    /* the queue it was consumed from */
    struct broker_message *message; /* the message as it arrived */
};

int broker_connect(struct broker **out, const struct broker_options *opt, struct pw_error *err);
void broker_free(struct broker *b); /* closes gracefully when the connection is still up */

int broker_fd(struct broker *b);
int broker_has_buffered(struct broker *b); /* frames already read: do not wait on the fd */

/* 1 = *out filled, 0 = nothing yet, <0 = connection/channel lost (err says why). */
int broker_next(struct broker *b, struct broker_delivery *out, struct pw_error *err);
void broker_delivery_free(struct broker_delivery *d);
struct celery_delivery_in broker_delivery_view(const struct broker_delivery *d);

int broker_ack(struct broker *b, uint64_t tag, struct pw_error *err);
int broker_reject(struct broker *b, uint64_t tag, int requeue, struct pw_error *err);
/* Per-consumer prefetch (quorum queues) reaches only consumers started afterwards, as
 * RabbitMQ defines it; channel-wide prefetch applies at once. */
int broker_set_prefetch(struct broker *b, int prefetch_count, struct pw_error *err);
/* basic.cancel of every consumer: no new deliveries (some may still be in flight);
 * unacked ones stay ours to ack or reject.  broker_resume_consumers() starts them
 * again (broker_connect starts them too); broker_consuming() says which holds. */
int broker_cancel_consumers(struct broker *b, struct pw_error *err);
int broker_resume_consumers(struct broker *b, struct pw_error *err);
int broker_consuming(const struct broker *b);

/* Publishing a delivered message again, e.g. to count how often it was attempted:
 * take it from the delivery (the caller then owns it), publish it through the default
 * exchange to `queue` with every property, header and the body unchanged except the
 * headers in `set` (replaced or added): an integer, or a string when `text` is set. */
struct broker_header_int {
    const char *name;
    int64_t value;
    const char *text; /* non-NULL: a string header (e.g. Celery's eta) instead of value */
};
struct broker_message *broker_delivery_take_message(struct broker_delivery *d);
void broker_message_free(struct broker_message *m);
int broker_republish(struct broker *b, const struct broker_message *m, const char *queue,
                     const struct broker_header_int *set, size_t n_set, struct pw_error *err);

struct broker_publish_props {
    const char *content_type;     /* default application/json */
    const char *content_encoding; /* default utf-8 */
    const char *correlation_id;   /* optional */
    int delivery_mode;            /* 1 transient, 2 persistent; 0 = 1 */
    const char *reply_to;         /* optional */
    const json_t *headers;        /* optional object, sent as an AMQP field table
                                   * (amqp_json_to_table: str S, int I/L, null V, ...) */
};
int broker_publish(struct broker *b, const char *exchange, const char *routing_key,
                   const struct broker_publish_props *props, const char *body, size_t len,
                   struct pw_error *err);

/* For a connection that publishes tasks (broker_connect with no queues: no consumer):
 * declares `queue` exactly as broker_connect declares the queues it consumes, as a
 * Celery client does before it publishes. */
int broker_declare_queue(struct broker *b, const char *queue, int quorum, struct pw_error *err);
/* The queue type for queues this program declares, as PW_QUEUE_TYPE / --queue-type name
 * it: "classic" -> *quorum = 0, "quorum" -> 1; NULL or "" means classic.  Anything else
 * is PW_EINVAL (a typo must not silently declare the wrong type). */
int broker_parse_queue_type(const char *name, int *quorum, struct pw_error *err);
/* Puts the channel in publisher-confirm mode (confirm.select): from now on the broker
 * acknowledges each publish once it has taken responsibility for it (for a persistent
 * message on a durable queue: written to disk). */
int broker_confirm_select(struct broker *b, struct pw_error *err);
/* Waits until the broker has confirmed every message published since confirm.select.
 * PW_EIO when it refused one (basic.nack) - which one is not said: treat all
 * unconfirmed ones as not sent; PW_ETIMEOUT after timeout_ms; <0 as elsewhere when the
 * connection is lost.  Deliveries that arrive meanwhile (none without consumers) are
 * dropped. */
int broker_wait_confirms(struct broker *b, int timeout_ms, struct pw_error *err);

/* ---- Celery's remote control and events (pidbox, celeryev) -------------------------
 * Declarations with the flags and arguments Celery 5.2 uses (a different value makes
 * RabbitMQ close the channel), no-ack consumers beside the task consumers (the
 * prefetch limit does not count their messages; broker_cancel_consumers leaves them);
 * their messages are published with broker_publish (props.headers).  A delivery from
 * these consumers is told apart by its exchange (celery.pidbox, reply.celery.pidbox). */
int broker_declare_exchange(struct broker *b, const char *name, const char *type, int durable,
                            struct pw_error *err);
/* Non-durable auto-delete queue with x-expires / x-message-ttl (ms; 0 = omitted),
 * bound to exchange with routing_key. */
int broker_declare_transient_queue(struct broker *b, const char *queue, int expires_ms, int ttl_ms,
                                   const char *exchange, const char *routing_key,
                                   struct pw_error *err);
/* basic.consume(no_ack=true); *tag_out (malloc'ed) names the consumer. */
int broker_consume_noack(struct broker *b, const char *queue, char **tag_out, struct pw_error *err);
int broker_cancel_tag(struct broker *b, const char *tag, struct pw_error *err);
/* add_consumer / cancel_consumer: one more task queue (declared as broker_connect
 * declares them, consumed now if the others are), or one less (its consumer cancelled;
 * its unacked deliveries stay ours to settle).  Adding a queue consumed already and
 * removing one not consumed are no-ops. */
int broker_add_queue(struct broker *b, const char *queue, struct pw_error *err);
int broker_remove_queue(struct broker *b, const char *queue, struct pw_error *err);

#endif
