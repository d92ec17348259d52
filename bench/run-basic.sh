#!/usr/bin/env bash
# Basic end-to-end benchmark: builds release, starts a broker on a scratch directory, measures the
# disk reference (appends with fdatasync after each, same file system, same block size as a
# produce batch, then 1 MiB blocks), runs tidelog-bench with acks=all and 1 KiB messages, and
# writes bench/RESULTS.md. About 40 s of measuring.
#
# Usage: bench/run-basic.sh            (env: DURATION_S, PARTITIONS, CONNECTIONS, BATCH_BYTES, IN_FLIGHT)
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION_S=${DURATION_S:-15}
PARTITIONS=${PARTITIONS:-4}
CONNECTIONS=${CONNECTIONS:-4}
BATCH_BYTES=${BATCH_BYTES:-16384}
IN_FLIGHT=${IN_FLIGHT:-5}
MESSAGE_BYTES=1024

cargo build --release -p tidelog -p tidelog-bench
BROKER=target/release/tidelog
BENCH=target/release/tidelog-bench

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tidelog-bench.XXXXXX")
BROKER_PID=""
cleanup() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID"
        wait "$BROKER_PID" || true
    fi
    rm -rf "$SCRATCH"
}
trap cleanup EXIT

# A port that is free right now.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000)))
mkdir -p "$SCRATCH/data" "$SCRATCH/ref"

echo "== disk reference in $SCRATCH"
REF_BATCH_JSON=$("$BENCH" disk-ref --dir "$SCRATCH/ref" --block-bytes "$BATCH_BYTES" --total-bytes $((32 * 1024 * 1024)) | tail -n1)
REF_MIB_JSON=$("$BENCH" disk-ref --dir "$SCRATCH/ref" --block-bytes $((1024 * 1024)) --total-bytes $((256 * 1024 * 1024)) | tail -n1)
echo "$REF_BATCH_JSON"
echo "$REF_MIB_JSON"

echo "== broker on 127.0.0.1:$PORT"
BROKER_CMD="$BROKER --listen 127.0.0.1:$PORT --data-dir $SCRATCH/data"
$BROKER_CMD >"$SCRATCH/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$SCRATCH/broker.log"; exit 1; }
    sleep 0.1
done

BENCH_CMD="$BENCH --bootstrap 127.0.0.1:$PORT --topic bench --partitions $PARTITIONS --message-bytes $MESSAGE_BYTES --batch-bytes $BATCH_BYTES --acks -1 --duration-s $DURATION_S --connections $CONNECTIONS --in-flight $IN_FLIGHT"
echo "== $BENCH_CMD"
BENCH_OUT=$($BENCH_CMD)
echo "$BENCH_OUT"
RUN_JSON=$(echo "$BENCH_OUT" | tail -n1)

kill -TERM "$BROKER_PID"
wait "$BROKER_PID"
BROKER_PID=""

field() { # field JSON NAME
    echo "$1" | sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p"
}
REF_BATCH_MB=$(field "$REF_BATCH_JSON" mb_per_s)
REF_BATCH_SYNCS=$(field "$REF_BATCH_JSON" syncs_per_s)
REF_MIB_MB=$(field "$REF_MIB_JSON" mb_per_s)
PRODUCE_MB=$(field "$RUN_JSON" produce_mb_per_s)
PRODUCE_MSGS=$(field "$RUN_JSON" produce_msgs_per_s)
PRODUCE_P50=$(field "$RUN_JSON" produce_p50_ms)
PRODUCE_P99=$(field "$RUN_JSON" produce_p99_ms)
FETCH_MB=$(field "$RUN_JSON" fetch_mb_per_s)
FETCH_MSGS=$(field "$RUN_JSON" fetch_msgs_per_s)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt() { awk -v a="$1" 'BEGIN { printf "%.1f", a }'; }

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
if [[ "$COMMIT" != "uncommitted" ]] && ! git diff --quiet HEAD 2>/dev/null; then COMMIT="$COMMIT (dirty)"; fi

cat >bench/RESULTS.md <<EOF
# Basic benchmark results

Produced by \`bench/run-basic.sh\` on $(date -u +%Y-%m-%dT%H:%MZ). Commit: $COMMIT.
Machine: $(nproc) CPUs, kernel $(uname -r), $(uname -m); scratch file system: $(df -T "$SCRATCH" | awk 'NR==2 {print $2}').
The machine may be shared; numbers are for comparison within one run.

## Reference (same file system, same run)

Sequential appends with \`fdatasync\` after each block (\`tidelog-bench disk-ref\`):

| block | MB/s | syncs/s |
|---|---|---|
| $BATCH_BYTES B (one produce batch) | $(fmt "$REF_BATCH_MB") | $(fmt "$REF_BATCH_SYNCS") |
| 1 MiB | $(fmt "$REF_MIB_MB") | $(fmt "$(field "$REF_MIB_JSON" syncs_per_s)") |

## Broker: acks=all, $MESSAGE_BYTES B messages

| phase | MB/s | messages/s | ratio to $BATCH_BYTES B fdatasync ref | ratio to 1 MiB fdatasync ref |
|---|---|---|---|---|
| produce (${DURATION_S} s) | $(fmt "$PRODUCE_MB") | $(fmt "$PRODUCE_MSGS") | $(ratio "$PRODUCE_MB" "$REF_BATCH_MB") | $(ratio "$PRODUCE_MB" "$REF_MIB_MB") |
| fetch (catch-up from 0) | $(fmt "$FETCH_MB") | $(fmt "$FETCH_MSGS") | $(ratio "$FETCH_MB" "$REF_BATCH_MB") | $(ratio "$FETCH_MB" "$REF_MIB_MB") |

Produce latency per request: p50 $PRODUCE_P50 ms, p99 $PRODUCE_P99 ms.
A produce ratio above 1 against the batch-sized reference means the broker syncs fewer times than
once per batch (group commit across connections and partitions).

## Commands

\`\`\`
$BROKER_CMD
$BENCH_CMD
\`\`\`

## Raw

\`\`\`
$REF_BATCH_JSON
$REF_MIB_JSON
$RUN_JSON
\`\`\`
EOF
echo "== wrote bench/RESULTS.md"
