#!/usr/bin/env bash
# Durable-produce benchmark: a release broker with --fsync always, confluent-kafka producers
# (bench/durable.py) sending 1 KiB messages with acks=all to 1 and to 16 partitions, first flat
# out, then paced at half of that maximum to measure p50/p99/p999 latency. In the same run, on
# the same file system, the disk's own limit: sequential writes with fdatasync after each, at the
# producer's batch size (16 KiB, the cadence of one sync per batch) and at 1 MiB
# (tidelog-bench disk-ref). Writes bench/RESULTS-durable.md.
#
# Usage: bench/durable.sh       (env: DURATION_S [10], ENGINE [auto], PYTHON [.venv/bin/python], BUILD [1])
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION_S=${DURATION_S:-10}
ENGINE=${ENGINE:-auto}
PYTHON=${PYTHON:-.venv/bin/python}
if [[ "${BUILD:-1}" == 1 ]]; then
    cargo build --release -p tidelog -p tidelog-bench
fi
BROKER=target/release/tidelog
BENCH=target/release/tidelog-bench

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tidelog-durable.XXXXXX")
BROKER_PID=""
cleanup() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID"
        wait "$BROKER_PID" || true
    fi
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$SCRATCH/data" "$SCRATCH/ref"

echo "== disk reference in $SCRATCH"
REF_16K=$("$BENCH" disk-ref --dir "$SCRATCH/ref" --block-bytes 16384 --total-bytes $((32 * 1024 * 1024)) | tail -n1)
# 16 partitions: 16 files, synced by as many threads as the broker has shards (its cadence).
REF_16K_16=$("$BENCH" disk-ref --dir "$SCRATCH/ref" --block-bytes 16384 --total-bytes $((32 * 1024 * 1024)) --files 16 --threads "$(nproc)" | tail -n1)
REF_1M=$("$BENCH" disk-ref --dir "$SCRATCH/ref" --block-bytes $((1024 * 1024)) --total-bytes $((256 * 1024 * 1024)) | tail -n1)
echo "$REF_16K"
echo "$REF_16K_16"
echo "$REF_1M"

BROKER_CMD="$BROKER --listen 127.0.0.1:$PORT --data-dir $SCRATCH/data --fsync always --io-engine $ENGINE --log-level warn"
echo "== $BROKER_CMD"
$BROKER_CMD >"$SCRATCH/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$SCRATCH/broker.log"; exit 1; }
    sleep 0.1
done

field() { echo "$1" | sed -n "s/.*\"$2\": \([-0-9.e+a-z]*\).*/\1/p"; }
ROWS=""
RAW=""
COMMANDS=""
for PARTITIONS in 1 16; do
    CMD="$PYTHON bench/durable.py --bootstrap 127.0.0.1:$PORT --topic durable-$PARTITIONS --partitions $PARTITIONS --duration-s $DURATION_S"
    echo "== $CMD --rate 0"
    MAX=$($CMD --rate 0 | tail -n1)
    echo "$MAX"
    HALF_RATE=$(awk -v r="$(field "$MAX" msgs_per_s)" 'BEGIN { printf "%d", r / 2 }')
    echo "== $CMD --rate $HALF_RATE"
    HALF=$($CMD --rate "$HALF_RATE" | tail -n1)
    echo "$HALF"
    if [[ "$PARTITIONS" == 1 ]]; then REF=$REF_16K; else REF=$REF_16K_16; fi
    RATIO=$(awk -v b="$(field "$MAX" mb_per_s)" -v r="$(echo "$REF" | sed -n 's/.*"mb_per_s":\([-0-9.e+]*\).*/\1/p')" 'BEGIN { printf "%.0f%%", 100 * b / r }')
    ROWS+="| $PARTITIONS | $(field "$MAX" msgs_per_s) | $(field "$MAX" mb_per_s) | $RATIO | $HALF_RATE | $(field "$HALF" p50_ms) | $(field "$HALF" p99_ms) | $(field "$HALF" p999_ms) |"$'\n'
    RAW+="$MAX"$'\n'"$HALF"$'\n'
    COMMANDS+="$CMD --rate 0"$'\n'"$CMD --rate $HALF_RATE"$'\n'
done
ENGINE_LINE=$(grep -m1 "I/O engine" "$SCRATCH/broker.log" || echo "engine: $ENGINE")
kill -TERM "$BROKER_PID"
wait "$BROKER_PID"
BROKER_PID=""

ref_field() { awk -v a="$(echo "$1" | sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p")" 'BEGIN { printf "%.1f", a }'; }
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
if [[ "$COMMIT" != "uncommitted" ]] && ! git diff --quiet HEAD 2>/dev/null; then COMMIT="$COMMIT (dirty)"; fi
cat >bench/RESULTS-durable.md <<EOF2
# Durable produce (acks=all, --fsync always)

Produced by \`bench/durable.sh\` on $(date -u +%Y-%m-%dT%H:%MZ). Commit: $COMMIT.
Machine: $(nproc) CPUs, kernel $(uname -r); scratch file system: $(df -T "$SCRATCH" | awk 'NR==2 {print $2}').
The machine may be shared (2 cores here, with the client on the same cores): compare within one run.

## The disk's own limit (same run, same file system)

Sequential writes, fdatasync after each (\`tidelog-bench disk-ref\`):

| write size | MB/s | syncs/s |
|---|---|---|
| 16 KiB (one producer batch per sync), 1 file | $(ref_field "$REF_16K" mb_per_s) | $(ref_field "$REF_16K" syncs_per_s) |
| 16 KiB, 16 files synced by $(nproc) threads (the 16-partition cadence) | $(ref_field "$REF_16K_16" mb_per_s) | $(ref_field "$REF_16K_16" syncs_per_s) |
| 1 MiB | $(ref_field "$REF_1M" mb_per_s) | $(ref_field "$REF_1M" syncs_per_s) |

## Broker: 1 KiB messages, acks=all, every acknowledgement after an fdatasync covering it

Maximum (flat out), then latency from produce() to delivery report at half that rate
(confluent-kafka 2.16, linger.ms=1, batch.size=16384, 5 requests in flight):

| partitions | max msgs/s | max MB/s | of the disk's limit at that cadence | paced at msgs/s | p50 ms | p99 ms | p999 ms |
|---|---|---|---|---|---|---|---|
$ROWS
$ENGINE_LINE

## Commands

\`\`\`
$BROKER_CMD
$COMMANDS\`\`\`

## Raw

\`\`\`
$REF_16K
$REF_16K_16
$REF_1M
$RAW\`\`\`
EOF2
echo "== wrote bench/RESULTS-durable.md"
