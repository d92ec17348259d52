#!/usr/bin/env bash
# A/B of the fetch path: catch-up read of the same page-cached data with `--fetch-sendfile true`
# (default) and `false` (copy through memory), interleaved rounds on one machine; prints the
# broker's CPU seconds per GB served and the throughput of each run.
#
#   bench/ab-sendfile.sh            3 rounds, ~2.5 GB of data
#   ROUNDS="1 2" POP_S=2 bench/ab-sendfile.sh
#
# Uses the release binaries in ${CARGO_TARGET_DIR:-target}/release (cargo build --release first).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin="${CARGO_TARGET_DIR:-$repo/target}/release"
data=$(mktemp -d "${TMPDIR:-/tmp}/tidelog-ab.XXXXXX")
port=${PORT:-47123}
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$data" "$data.log"; }
trap cleanup EXIT

start() {
    "$bin/tidelog" --listen "127.0.0.1:$port" --data-dir "$data" --log-level warn --fsync never "$@" \
        >>"$data.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.1; done
    echo "broker did not start" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

start
"$bin/tidelog-bench" load --bootstrap "127.0.0.1:$port" --topic ab --partitions 16 --producers 4 \
    --consumers 0 --message-bytes 1024 --batch-bytes 1024000 --acks 1 --rate 0 \
    --duration-s "${POP_S:-3}" --warmup-s 0 --in-flight 5 --broker-pid "$pid" --label populate >/dev/null
stop
sync
for round in ${ROUNDS:-1 2 3}; do
    for sendfile in true false; do
        start --fetch-sendfile "$sendfile"
        "$bin/tidelog-bench" load --bootstrap "127.0.0.1:$port" --topic ab --partitions 16 --catch-up \
            --consumers 4 --broker-pid "$pid" --label "catch-up" | tail -1 |
            python3 -c 'import json, sys
d = json.loads(sys.stdin.read())
print("round %s --fetch-sendfile %-5s %6.0f MB/s  broker %.3f CPU s/GB" % (sys.argv[1], sys.argv[2], d["mb_per_s"], d["broker_cpu_s_per_gb"]))' "$round" "$sendfile"
        stop
    done
done
