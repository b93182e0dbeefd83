#!/usr/bin/env bash
# services.sh - start and stop throwaway RabbitMQ and PostgreSQL servers for the tests.
#
#   services.sh start STATE_DIR [rabbit|postgres|all]   start, write STATE_DIR/services.env
#   services.sh stop STATE_DIR                           stop everything started there
#   services.sh restart-rabbit STATE_DIR                 stop and start RabbitMQ on the same port
#   services.sh stop-rabbit STATE_DIR / start-rabbit STATE_DIR
#   services.sh restart-postgres STATE_DIR               fast stop, start the same cluster on its port
#   services.sh stop-postgres STATE_DIR / start-postgres STATE_DIR
#
# Every server listens on 127.0.0.1 on a free port picked at start, keeps its data under
# STATE_DIR and its own Erlang node name and epmd port, so a server left over from an
# earlier run (or the distribution's system service on 5672/5432) cannot interfere.
# Test scripts source STATE_DIR/services.env to find them.
set -euo pipefail

cmd=${1:?usage: services.sh start|stop|restart-rabbit STATE_DIR}
state=${2:?STATE_DIR required}
what=${3:-all}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
RABBIT_BIN=/usr/lib/rabbitmq/bin

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rabbit_env() {
    # shellcheck disable=SC1091
    source "$state/rabbit.ports"
    export HOME="$state/rabbit"
    export RABBITMQ_NODENAME="pwtest${AMQP_PORT}@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$AMQP_PORT
    export RABBITMQ_DIST_PORT=$DIST_PORT
    export ERL_EPMD_PORT=$EPMD_PORT
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_BASE="$state/rabbit"
    export RABBITMQ_MNESIA_BASE="$state/rabbit/mnesia"
    export RABBITMQ_LOG_BASE="$state/rabbit/log"
    export RABBITMQ_CONFIG_FILE="$state/rabbit/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$state/rabbit/enabled_plugins"
    export RABBITMQ_PID_FILE="$state/rabbit/rabbit.pid"
    export RABBITMQ_LOGS="$state/rabbit/log/rabbit.log"
    # Erlang distribution on loopback too (it would listen on every interface).
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# A throwaway CA and a server certificate for 127.0.0.1, for the amqps:// listener.
make_tls_files() {
    local d="$state/tls"
    [ -f "$d/server.pem" ] && return 0
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pw-test-ca" \
        -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/server.key" \
        -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/san.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
    chmod 644 "$d"/*
}

start_rabbit() {
    mkdir -p "$state/rabbit/log" "$state/rabbit/mnesia"
    if [ ! -f "$state/rabbit.ports" ]; then
        printf 'AMQP_PORT=%s\nDIST_PORT=%s\nEPMD_PORT=%s\nAMQPS_PORT=%s\n' "$(free_port)" "$(free_port)" \
            "$(free_port)" "$(free_port)" >"$state/rabbit.ports"
    fi
    make_tls_files
    rabbit_env
    # consumer_timeout: RabbitMQ's default (30 min), stated so the tests run with what
    # production has; PW_RABBIT_CONSUMER_TIMEOUT_MS overrides it for the timeout test.
    cat >"$RABBITMQ_CONFIG_FILE" <<EOF
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
loopback_users.guest = true
consumer_timeout = ${PW_RABBIT_CONSUMER_TIMEOUT_MS:-1800000}
listeners.ssl.default = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $state/tls/ca.pem
ssl_options.certfile = $state/tls/server.pem
ssl_options.keyfile = $state/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
    echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
    nohup "$RABBIT_BIN/rabbitmq-server" >"$state/rabbit/log/stdout.log" 2>&1 &
    echo $! >"$state/rabbit/server.pid"
    for _ in $(seq 1 120); do
        if "$RABBIT_BIN/rabbitmqctl" -q await_startup --timeout 2 >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$(cat "$state/rabbit/server.pid")" 2>/dev/null; then
            echo "rabbitmq-server exited; log:" >&2
            tail -n 40 "$state/rabbit/log/stdout.log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
    echo "rabbitmq-server did not start in time" >&2
    tail -n 40 "$state/rabbit/log/stdout.log" >&2 || true
    return 1
}

stop_rabbit() {
    [ -f "$state/rabbit.ports" ] || return 0
    (
        rabbit_env
        "$RABBIT_BIN/rabbitmqctl" -q stop >/dev/null 2>&1 || true
        if [ -f "$state/rabbit/server.pid" ]; then
            pid=$(cat "$state/rabbit/server.pid")
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        # The node's own epmd (private port) goes with it.
        pkill -f "epmd.*-port $EPMD_PORT" 2>/dev/null || true
        pkill -9 -f "beam.*$RABBITMQ_NODENAME" 2>/dev/null || true
    )
}

start_postgres() {
    local port
    port=$(free_port)
    mkdir -p "$state/pg"
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    chown postgres "$state/pg"
    chmod 700 "$state/pg"
    echo 'pw-test-secret' >"$state/pg.pw"
    chown postgres "$state/pg.pw"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$state/pg/data" -U pw --auth=scram-sha-256 \
        --pwfile="$state/pg.pw" -E UTF8 --locale=C >"$state/pg/initdb.log" 2>&1
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$state/pg/data" -w -t 60 -l "$state/pg/server.log" \
        -o "-p $port -k $state/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    PGPASSWORD=pw-test-secret "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U pw -d postgres -qAt \
        -c 'CREATE DATABASE pw' >/dev/null
    echo "PG_PORT=$port" >"$state/pg.ports"
}

# The cluster start_postgres made, started again on the port it had (restarts in tests).
restart_postgres_cluster() {
    # shellcheck disable=SC1091
    source "$state/pg.ports"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$state/pg/data" -w -t 60 -l "$state/pg/server.log" \
        -o "-p $PG_PORT -k $state/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
}

stop_postgres() {
    [ -d "$state/pg/data" ] || return 0
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$state/pg/data" -m fast -w stop >/dev/null 2>&1 || true
}

write_env() {
    {
        echo "PW_SERVICES_DIR=$state"
        if [ -f "$state/rabbit.ports" ]; then
            # shellcheck disable=SC1091
            source "$state/rabbit.ports"
            echo "PW_AMQP_PORT=$AMQP_PORT"
            echo "CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT//"
            echo "PW_AMQPS_URL=amqps://guest:guest@localhost:$AMQPS_PORT//"
            echo "PW_TLS_CA_FILE=$state/tls/ca.pem"
        fi
        if [ -f "$state/pg.ports" ]; then
            # shellcheck disable=SC1091
            source "$state/pg.ports"
            echo "PW_PG_PORT=$PG_PORT"
            echo "DATABASE_URL=postgresql://pw:pw-test-secret@127.0.0.1:$PG_PORT/pw"
        fi
    } >"$state/services.env"
}

case "$cmd" in
start)
    rm -rf "$state"
    mkdir -p "$state"
    case "$what" in
    rabbit) start_rabbit ;;
    postgres) start_postgres ;;
    all) start_rabbit && start_postgres ;;
    esac
    write_env
    cat "$state/services.env"
    ;;
stop)
    stop_rabbit
    stop_postgres
    ;;
stop-rabbit) stop_rabbit ;;
start-rabbit) start_rabbit ;;
restart-rabbit)
    stop_rabbit
    start_rabbit
    ;;
stop-postgres) stop_postgres ;;
start-postgres) restart_postgres_cluster ;;
restart-postgres)
    stop_postgres
    restart_postgres_cluster
    ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
