#!/usr/bin/env bash
# Throwaway PostgreSQL 15 + Redis for tests/benchmarks, everything inside DIR.
#   scripts/services.sh start DIR   -> prints DATABASE_URL=... and REDIS_URL=... on stdout
#   scripts/services.sh stop DIR    -> stops what start started (idempotent)
#   scripts/services.sh start-postgres DIR | start-redis DIR
#                                   -> starts that one store again in DIR (after a fault test stopped it)
#   scripts/services.sh install-redis -> installs redis-server and redis-cli when missing (as root, from Debian)
#   scripts/services.sh start-cluster DIR
#                                   -> a Redis Cluster of 3 masters + 3 replicas on six consecutive ports
#                                      from REDIS_CLUSTER_PORT; prints REDIS_CLUSTER_NODES=redis://…,… on stdout
#   scripts/services.sh start-cluster-node DIR PORT
#                                   -> starts one node of that cluster again (it rejoins, as a replica if it lost its slots)
# Ports: PG_PORT (default 55432), REDIS_PORT (default 56379), REDIS_CLUSTER_PORT (default: a free run of six
# ports from 10000 to 22000, chosen at start; each node's cluster bus listens 10000 above it). Those sit below
# the ephemeral range, so no port a test picks at random (port 0) can take a node's while it is down.
# `stop DIR` stops whatever start and start-cluster started in DIR. All chatter goes to stderr.
set -euo pipefail

PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
REDIS_CLUSTER_PORT=${REDIS_CLUSTER_PORT:-}
CLUSTER_NODES=6
# How long a master may be silent before its replica takes over; short, so a failover takes seconds, long enough
# that a node starved of CPU by a busy test run is not failed over by mistake.
CLUSTER_NODE_TIMEOUT_MS=${REDIS_CLUSTER_NODE_TIMEOUT_MS:-2000}
WAIT_SECS=30

die() { echo "services.sh: $*" >&2; exit 1; }

# initdb/pg_ctl/postgres refuse to run as root; run them as the postgres user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pid PIDFILE EXPECTED_COMM SIGNAL NAME
stop_pid() {
  local pidfile=$1 comm=$2 sig=$3 name=$4 pid i
  [ -s "$pidfile" ] || return 0
  pid=$(head -n1 "$pidfile")
  # Only signal the pid if it is still the process we started (guards against pid reuse).
  if [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < WAIT_SECS * 5; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "services.sh: $name (pid $pid) did not exit in ${WAIT_SECS}s, killing" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

stop_all() {
  local dir=$1
  # postgres.pid is only written once PG is up; fall back to postmaster.pid after a half-done start.
  if [ -s "$dir/postgres.pid" ]; then
    stop_pid "$dir/postgres.pid" postgres INT postgres   # SIGINT = fast shutdown
  elif [ -s "$dir/pg/postmaster.pid" ]; then
    stop_pid "$dir/pg/postmaster.pid" postgres INT postgres
  fi
  stop_pid "$dir/redis.pid" redis-server TERM redis
  local pidfile
  for pidfile in "$dir"/cluster/*.pid; do
    [ -e "$pidfile" ] && stop_pid "$pidfile" redis-server TERM "cluster node $(basename "$pidfile" .pid)"
  done
  return 0
}

# prepare_dir DIR -> the absolute DIR, made traversable for the postgres user
prepare_dir() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then chmod a+x "$dir"; fi   # mktemp -d gives 0700; postgres must be able to traverse into DIR
  echo "$dir"
}

start_pg() {
  local dir=$1 pgdata=$1/pg
  port_busy "$PG_PORT" && die "port $PG_PORT (PG_PORT) already in use on 127.0.0.1"
  mkdir -p "$pgdata"
  touch "$dir/postgres.log"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$pgdata" "$dir/postgres.log"
    chmod 700 "$pgdata"
    as_pg test -w "$pgdata" || die "postgres user cannot access $pgdata (a parent dir is not traversable?)"
  fi
  if [ ! -s "$pgdata/PG_VERSION" ]; then
    as_pg initdb -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
      >"$dir/initdb.log" 2>&1 || die "initdb failed, see $dir/initdb.log"
    # TCP on loopback only; no unix socket (keeps us out of /var/run/postgresql).
    printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n" >>"$pgdata/postgresql.conf"
  fi
  as_pg pg_ctl start -D "$pgdata" -l "$dir/postgres.log" -o "-p $PG_PORT" -w -t "$WAIT_SECS" -s >&2 \
    || die "PostgreSQL failed to start or was not ready within ${WAIT_SECS}s (port $PG_PORT), see $dir/postgres.log"
  head -n1 "$pgdata/postmaster.pid" >"$dir/postgres.pid"
}

# need_redis LOGDIR
need_redis() {
  local dir=$1
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "redis-server not installed (need root to apt-get install it)"
  echo "services.sh: installing redis-server (log: $dir/apt.log)" >&2
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; } \
    >"$dir/apt.log" 2>&1 || die "installing redis-server failed, see $dir/apt.log"
}

start_redis() {
  local dir=$1 i
  port_busy "$REDIS_PORT" && die "port $REDIS_PORT (REDIS_PORT) already in use on 127.0.0.1"
  need_redis "$dir"
  mkdir -p "$dir/redis"
  rm -f "$dir/redis.pid"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir/redis" \
    --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    || die "redis-server failed to launch (port $REDIS_PORT), see the error above or $dir/redis.log"
  for ((i = 0; i < WAIT_SECS * 5; i++)); do
    [ -s "$dir/redis.pid" ] && [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.2
  done
  [ "$i" -lt $((WAIT_SECS * 5)) ] \
    || die "Redis did not answer PING within ${WAIT_SECS}s on port $REDIS_PORT, see $dir/redis.log"
}

cluster_ports() { seq "$REDIS_CLUSTER_PORT" $((REDIS_CLUSTER_PORT + CLUSTER_NODES - 1)); }

# A first port from which the nodes' ports and their bus ports are all free.
free_cluster_port() {
  local tries port
  for ((tries = 0; tries < 50; tries++)); do
    REDIS_CLUSTER_PORT=$((10000 + RANDOM % 12000))
    for port in $(cluster_ports); do
      if port_busy "$port" || port_busy $((port + 10000)); then continue 2; fi
    done
    echo "$REDIS_CLUSTER_PORT"
    return 0
  done
  die "found no six free ports (and their bus ports) from 10000 to 22000 for the cluster; set REDIS_CLUSTER_PORT"
}

# A node's cluster bus listens 10000 above its port (Redis's default), or 10000 below where that is past 65535.
bus_port() { if (($1 + 10000 <= 65535)); then echo $(($1 + 10000)); else echo $(($1 - 10000)); fi; }

# One cluster node in DIR/cluster/PORT; its nodes.conf there keeps its identity across a restart.
start_cluster_node() {
  local dir=$1 port=$2 bus i
  bus=$(bus_port "$port")
  port_busy "$port" && die "port $port already in use on 127.0.0.1"
  port_busy "$bus" && die "port $bus (the cluster bus of node $port) already in use on 127.0.0.1"
  mkdir -p "$dir/cluster/$port"
  rm -f "$dir/cluster/$port.pid"
  # Without full coverage, the masters still up keep serving their slots while one is failed over.
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/cluster/$port" \
    --cluster-enabled yes --cluster-port "$bus" --cluster-config-file nodes.conf \
    --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT_MS" \
    --cluster-require-full-coverage no \
    --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/cluster/$port.pid" --logfile "$dir/cluster/$port.log" \
    || die "cluster node on port $port failed to launch, see $dir/cluster/$port.log"
  for ((i = 0; i < WAIT_SECS * 5; i++)); do
    [ -s "$dir/cluster/$port.pid" ] && [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.2
  done
  die "cluster node on port $port did not answer PING within ${WAIT_SECS}s, see $dir/cluster/$port.log"
}

# Every node agrees the cluster is whole, every master has its replica and every replica is in sync.
cluster_settled() {
  local port info
  for port in $(cluster_ports); do
    info=$(redis-cli -p "$port" cluster info 2>/dev/null) || return 1
    [[ $info == *cluster_state:ok* && $info == *"cluster_known_nodes:$CLUSTER_NODES"* ]] || return 1
    info=$(redis-cli -p "$port" info replication 2>/dev/null) || return 1
    [[ $info == *role:master*connected_slaves:1* || $info == *master_link_status:up* ]] || return 1
  done
}

start_cluster() {
  local dir port i nodes=() urls=()
  dir=$(prepare_dir "$1")
  cd "$dir"
  trap "stop_all $(printf %q "$dir")" EXIT
  need_redis "$dir"
  [ -n "$REDIS_CLUSTER_PORT" ] || REDIS_CLUSTER_PORT=$(free_cluster_port)
  for port in $(cluster_ports); do port_busy "$port" && die "port $port (from REDIS_CLUSTER_PORT) already in use on 127.0.0.1"; done
  rm -rf "$dir/cluster"   # a new cluster: nodes that remember an old one refuse to join
  for port in $(cluster_ports); do
    start_cluster_node "$dir" "$port"
    nodes+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port")
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/cluster/create.log" 2>&1 \
    || die "redis-cli --cluster create failed, see $dir/cluster/create.log"
  for ((i = 0; i < WAIT_SECS * 5; i++)); do
    cluster_settled && break
    sleep 0.2
  done
  [ "$i" -lt $((WAIT_SECS * 5)) ] || die "the cluster did not settle within ${WAIT_SECS}s, see $dir/cluster/*.log"
  trap - EXIT
  (IFS=,; echo "REDIS_CLUSTER_NODES=${urls[*]}")
}

start_all() {
  local dir
  dir=$(prepare_dir "$1")
  cd "$dir"   # so the postgres user never starts in an unreadable cwd such as /root
  # If anything below fails, clean up whatever already started (logs stay in DIR).
  trap "stop_all $(printf %q "$dir")" EXIT
  port_busy "$PG_PORT" && die "port $PG_PORT (PG_PORT) already in use on 127.0.0.1"
  port_busy "$REDIS_PORT" && die "port $REDIS_PORT (REDIS_PORT) already in use on 127.0.0.1"
  start_pg "$dir"
  start_redis "$dir"
  trap - EXIT
  echo "DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
}

# One store again, in a DIR that `start` set up (the fault suite restarts a store it stopped).
start_one() {
  local dir
  dir=$(prepare_dir "$2")
  cd "$dir"
  case "$1" in
    postgres) start_pg "$dir" ;;
    redis) start_redis "$dir" ;;
  esac
}

case "${1:-}" in
  start) [ -n "${2:-}" ] || die "usage: $0 start DIR"; start_all "$2" ;;
  stop)  [ -n "${2:-}" ] || die "usage: $0 stop DIR"; [ -d "$2" ] && stop_all "$2"; exit 0 ;;
  start-postgres | start-redis)
         [ -d "${2:-}" ] || die "usage: $0 $1 DIR (a DIR that start set up)"; start_one "${1#start-}" "$2" ;;
  install-redis) need_redis "${TMPDIR:-/tmp}" ;;
  start-cluster) [ -n "${2:-}" ] || die "usage: $0 start-cluster DIR"; start_cluster "$2" ;;
  start-cluster-node)
         [ -d "${2:-}/cluster" ] && [[ ${3:-} =~ ^[0-9]+$ ]] || die "usage: $0 start-cluster-node DIR PORT (a DIR that start-cluster set up)"
         start_cluster_node "$(cd "$2" && pwd)" "$3" ;;
  *)     die "usage: $0 {start|stop|start-postgres|start-redis|start-cluster|start-cluster-node} DIR | $0 install-redis" ;;
esac
