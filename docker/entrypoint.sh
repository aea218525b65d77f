#!/bin/sh
# Container entrypoint for every auxnas service.
# 1. Records the command for docker/healthcheck.py (a healthcheck does not see PID 1's argv).
# 2. For `auxnas worker` with RAY_ADDRESS=<host>:<port>: a Ray driver connects only through a
#    raylet on its own host, so this container first joins the cluster as a node. It offers no
#    GPUs and, by default, no CPUs: the head already advertises this machine's CPUs, and
#    evaluations must land on the GPU nodes.
# 3. Runs the command in place of this shell, so it receives the container's stop signal.
set -eu

printf '%s\n' "$@" > "${AUXNAS_COMMAND_FILE:-/tmp/auxnas-command}"

if [ "${1:-}" = auxnas ] && [ "${2:-}" = worker ] && [ -n "${RAY_ADDRESS:-}" ]; then
  case "$RAY_ADDRESS" in
    ray://*) ;;  # Ray Client: no local node needed
    *)
      ray start \
        --address="$RAY_ADDRESS" \
        --num-cpus="${AUXNAS_WORKER_NODE_CPUS:-0}" \
        --num-gpus=0 \
        --object-store-memory="${AUXNAS_WORKER_OBJECT_STORE_MEMORY:-1000000000}" \
        ${AUXNAS_NODE_IP:+--node-ip-address="$AUXNAS_NODE_IP"} \
        --disable-usage-stats
      ;;
  esac
fi

exec "$@"
