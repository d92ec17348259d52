#!/usr/bin/env bash
# Tiered-storage benchmark: a release broker tiering to a real S3-compatible server on loopback
# (moto's server mode, as the tiering tests use), and in the same run a plain boto3 copy of the
# same bytes to the same server as the reference (bench/tiering.py does the measuring). For
# each segment size (8 MiB: one PUT per segment; 32 MiB: multipart in 8 MiB parts), REPEAT
# times:
#
# 1. Upload: a topic is filled flat out (confluent-kafka, 1 KiB values, acks=1) with tiering
#    off, then remote.storage.enable=true and local.retention.bytes=1 are set, so the broker
#    finds every sealed segment waiting. From the broker log's `uploaded segment` lines: the
#    uploaded bytes over the span from the first upload's start to the last one's end; the
#    wait goes on until the local copies are gone too.
# 2. Plain copy up, right after: boto3 PUTs files of exactly the sizes the broker uploaded
#    (multipart above 8 MiB, as the broker), by as many threads as the broker has uploads in
#    flight.
# 3. Cold read: the broker restarted (empty cache), the whole topic read from offset 0 by one
#    confluent-kafka consumer; compared: the remote segments' bytes over the time until every
#    partition has passed its remote end.
# 4. Plain copy down, right after: the reference objects read back whole (GET), then in 1 MiB
#    range GETs (the broker's request size), by the same threads.
# 5. The read of step 3 again, the broker's cache now warm: the consumer's own ceiling.
# Writes bench/RESULTS-tiering.md: medians over the repeats, ratios with their range.
#
# Usage: bench/tiering.sh
#   env: SEGMENT_MIB ["8 32"], TOTAL_MB [512], PARTITIONS [4], REPEAT [3],
#        UPLOAD_CONCURRENCY [2], SHARDS [nproc], CACHE_BYTES [2 x TOTAL_MB MB],
#        PYTHON [.venv/bin/python], BUILD [1], TIMEOUT_S [300] (each wait),
#        KEEP [0] (1: keep the scratch directory, logs included),
#        UPLOAD_WHILE_PRODUCING [0] (1: the topic is tiered from its creation, so uploads
#        share the machine with the producer and the upload figure mixes both)
set -euo pipefail

cd "$(dirname "$0")/.."
SEGMENT_MIB=${SEGMENT_MIB:-"8 32"}
TOTAL_MB=${TOTAL_MB:-512}
PARTITIONS=${PARTITIONS:-4}
REPEAT=${REPEAT:-3}
UPLOAD_CONCURRENCY=${UPLOAD_CONCURRENCY:-2}
SHARDS=${SHARDS:-$(nproc)}
# Room for the whole topic, so that the repeated read finds every chunk cached (a sequential
# scan larger than an LRU evicts each chunk before it is wanted again).
CACHE_BYTES=${CACHE_BYTES:-$(( 2 * TOTAL_MB * 1000 * 1000 ))}
PYTHON=${PYTHON:-.venv/bin/python}
TIMEOUT_S=${TIMEOUT_S:-300}
UPLOAD_WHILE_PRODUCING=${UPLOAD_WHILE_PRODUCING:-0}
if [[ "${BUILD:-1}" == 1 ]]; then
    cargo build --release -p tidelog
fi
BROKER=target/release/tidelog
BENCH="$PYTHON bench/tiering.py"
STARTED_S=$SECONDS

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tidelog-tiering.XXXXXX")
BROKER_PID=""
MOTO_PID=""
stop_broker() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID"
        wait "$BROKER_PID" || true
    fi
    BROKER_PID=""
}
cleanup() {
    stop_broker
    if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill -TERM "$MOTO_PID"
        wait "$MOTO_PID" || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then echo "== kept $SCRATCH"; else rm -rf "$SCRATCH"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# await_port PORT PID LOG: until something accepts on PORT, as long as PID lives.
await_port() {
    for _ in $(seq 1 900); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || { tail -n 50 "$3"; exit 1; }
        sleep 0.1
    done
    echo "nothing accepts on port $1"; tail -n 50 "$3"; exit 1
}

S3_PORT=$(free_port)
S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
MOTO_CMD="$PYTHON -m moto.server -H 127.0.0.1 -p $S3_PORT"
echo "== $MOTO_CMD"
$MOTO_CMD >"$SCRATCH/moto.log" 2>&1 &
MOTO_PID=$!
await_port "$S3_PORT" "$MOTO_PID" "$SCRATCH/moto.log"   # moto imports every service: seconds
MOTO_VERSION=$($PYTHON -c 'import moto; print(moto.__version__)')

# Uploads in flight: each shard runs up to UPLOAD_CONCURRENCY, one per partition.
THREADS=$(( PARTITIONS < SHARDS * UPLOAD_CONCURRENCY ? PARTITIONS : SHARDS * UPLOAD_CONCURRENCY ))
TOTAL_BYTES=$(( TOTAL_MB * 1000 * 1000 ))
MESSAGES=$(( TOTAL_BYTES / 1024 ))
RESULTS="$SCRATCH/results.jsonl"
: >"$RESULTS"

field() { echo "$1" | sed -n "s/.*\"$2\": \([-0-9.e+a-z]*\).*/\1/p"; }
# measure MIB ROUND PHASE COMMAND...: runs the command (stops the run if it fails) and keeps its
# JSON line, tagged, in results.jsonl; the line is left in $LAST too.
measure() {
    local mib=$1 round=$2 phase=$3
    shift 3
    LAST=$("$@" | tail -n1)
    echo "   $phase: $LAST"
    echo "{\"segment_mib\": $mib, \"repeat\": $round, \"phase\": \"$phase\", \"result\": $LAST}" >>"$RESULTS"
}
COMMANDS="$MOTO_CMD"$'\n'
for ROUND in $(seq 1 "$REPEAT"); do
    for MIB in $SEGMENT_MIB; do
        SEGMENT_BYTES=$(( MIB * 1024 * 1024 ))
        TOPIC="tiered-${MIB}m"
        DATA="$SCRATCH/data-$MIB-$ROUND"
        BUCKET="tidelog-bench-$MIB-$ROUND"
        REF_BUCKET="tidelog-ref-$MIB-$ROUND"
        SIZES="$SCRATCH/sizes-$MIB-$ROUND.json"
        LOG="$SCRATCH/broker-$MIB-$ROUND.log"
        PORT=$(free_port)
        echo "== round $ROUND of $REPEAT, segment.bytes $MIB MiB"
        mkdir -p "$DATA"
        $BENCH create-bucket --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" >/dev/null
        BROKER_CMD="$BROKER --listen 127.0.0.1:$PORT --data-dir $DATA --shards $SHARDS --fsync never --log-level info"
        BROKER_CMD+=" --tier-url s3://$BUCKET/bench --tier-endpoint $S3_ENDPOINT --tier-region us-east-1"
        BROKER_CMD+=" --tier-access-key-id tidelog-bench --tier-secret-access-key tidelog-bench-secret --tier-allow-http true"
        BROKER_CMD+=" --tier-upload-interval-ms 100 --tier-upload-concurrency $UPLOAD_CONCURRENCY --tier-cache-bytes $CACHE_BYTES"
        $BROKER_CMD >"$LOG" 2>&1 &
        BROKER_PID=$!
        await_port "$PORT" "$BROKER_PID" "$LOG"

        PRODUCE_CMD="$BENCH produce --bootstrap 127.0.0.1:$PORT --topic $TOPIC --partitions $PARTITIONS --segment-bytes $SEGMENT_BYTES --total-bytes $TOTAL_BYTES"
        if [[ "$UPLOAD_WHILE_PRODUCING" == 1 ]]; then
            PRODUCE_CMD+=" --tiered"
            ENABLE_CMD="(tiered from the start)"
            ENABLED=$(printf '{"enabled_at": %s}' "$(date +%s.%N)")
            measure "$MIB" "$ROUND" produce $PRODUCE_CMD
        else
            measure "$MIB" "$ROUND" produce $PRODUCE_CMD
            ENABLE_CMD="$BENCH enable-tiering --bootstrap 127.0.0.1:$PORT --topic $TOPIC"
            ENABLED=$($ENABLE_CMD | tail -n1)
        fi
        UPLOAD_CMD="$BENCH await-uploads --log $LOG --data-dir $DATA --topic $TOPIC --partitions $PARTITIONS --sizes-file $SIZES --timeout-s $TIMEOUT_S"
        measure "$MIB" "$ROUND" upload $UPLOAD_CMD --enabled-at "$(field "$ENABLED" enabled_at)"
        UPLOADED=$LAST
        REF_ARGS="--endpoint $S3_ENDPOINT --bucket $REF_BUCKET --sizes-file $SIZES --scratch $SCRATCH/ref --threads $THREADS"
        measure "$MIB" "$ROUND" ref_up $BENCH ref-up $REF_ARGS

        # Restarted: the cache is empty, the manifests are read again.
        stop_broker
        $BROKER_CMD >>"$LOG" 2>&1 &
        BROKER_PID=$!
        await_port "$PORT" "$BROKER_PID" "$LOG"
        REMOTE_END=$(echo "$UPLOADED" | sed -n 's/.*"remote_end_offsets": \({[^}]*}\).*/\1/p')
        CONSUME_CMD="$BENCH consume --bootstrap 127.0.0.1:$PORT --topic $TOPIC --partitions $PARTITIONS --expect-messages $MESSAGES --remote-bytes $(field "$UPLOADED" bytes) --timeout-s $TIMEOUT_S"
        measure "$MIB" "$ROUND" cold $CONSUME_CMD --remote-end-offsets "$REMOTE_END"
        measure "$MIB" "$ROUND" ref_down $BENCH ref-down $REF_ARGS
        measure "$MIB" "$ROUND" warm $CONSUME_CMD --remote-end-offsets "$REMOTE_END"
        stop_broker
        $BENCH drop-bucket --endpoint "$S3_ENDPOINT" --bucket "$REF_BUCKET"
        $BENCH drop-bucket --endpoint "$S3_ENDPOINT" --bucket "$BUCKET"
        if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$DATA"; fi
        if [[ "$ROUND" == 1 ]]; then
            COMMANDS+="$BROKER_CMD"$'\n'"$PRODUCE_CMD"$'\n'"$ENABLE_CMD"$'\n'"$UPLOAD_CMD --enabled-at <time of enable-tiering>"$'\n'
            COMMANDS+="$BENCH ref-up $REF_ARGS"$'\n'"(broker restarted)"$'\n'"$CONSUME_CMD --remote-end-offsets '<from await-uploads>'"$'\n'
            COMMANDS+="$BENCH ref-down $REF_ARGS"$'\n'"$CONSUME_CMD --remote-end-offsets '<from await-uploads>'   (again, cache warm)"$'\n'
        fi
    done
done
ELAPSED_S=$(( SECONDS - STARTED_S ))
# Everything the brokers said above INFO: retries, errors.
PROBLEMS=$(cat "$SCRATCH"/broker-*.log | sed 's/\x1b\[[0-9;]*m//g' | grep -E ' (WARN|ERROR) ' | head -n 20 || true)

if [[ "$UPLOAD_WHILE_PRODUCING" == 1 ]]; then
    UPLOAD_START="Topic tiered from its creation: uploads start while the producer runs."
else
    UPLOAD_START="Tiering switched on with every sealed segment waiting."
fi
UPLOAD_INTRO="$UPLOAD_START Broker MB/s: bytes of the uploaded
\`.log\` objects over the span from the first upload's start to the last one's end (the
\`.index\`, \`.timeindex\` and manifest PUTs are the broker's overhead, not counted). Per
upload: the same bytes over the summed \`elapsed_ms\` of the uploads. Uploads in flight: the
summed \`elapsed_ms\` over the span; gap: from one upload's end to the start of the same
partition's next (the next starts at a later \`--tier-upload-interval-ms\` tick). Plain PUT:
boto3, $THREADS threads, right after the broker's upload."
READ_INTRO="Broker restarted (empty cache), one confluent-kafka consumer assigned all partitions at
offset 0 (fetch.max.bytes 50 MiB, max.partition.fetch.bytes 10 MiB). Broker remote MB/s:
the remote segments' bytes over the time until every partition passed its remote end; the
whole-topic figure is value bytes over the whole read, the local tail included. The broker
reads remote \`.log\` objects in 1 MiB range GETs; the range-GET column is the reference in
that request shape. Plain GETs: boto3, $THREADS threads, right after the cold read. Then the
read is repeated on the same broker, its cache now holding every chunk
(\`--tier-cache-bytes $CACHE_BYTES\`): the consumer's and the fetch path's own ceiling."
TABLES=$($BENCH report --results "$RESULTS" --upload-intro "$UPLOAD_INTRO" --read-intro "$READ_INTRO")

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
if [[ "$COMMIT" != "uncommitted" ]] && ! git diff --quiet HEAD 2>/dev/null; then COMMIT="$COMMIT (dirty)"; fi
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)
cat >bench/RESULTS-tiering.md <<EOF2
# Tiered storage: upload and cold read against a local S3 server

Produced by \`bench/tiering.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED_S} s. Commit: $COMMIT.
Machine: $(nproc) CPUs (${CPU:-unknown CPU}), kernel $(uname -r); load average at the end:
$(cut -d' ' -f1-3 /proc/loadavg). S3 server: moto $MOTO_VERSION in server mode on loopback, one
Python process on the same cores as the broker and the clients: the absolute figures are
moto's; the ratios, each to the plain copy measured right next to it, are the broker's.

Broker: $SHARDS shards, \`--tier-upload-concurrency $UPLOAD_CONCURRENCY\`, \`--tier-upload-interval-ms 100\`,
\`--fsync never\`. Topic: $PARTITIONS partitions, $TOTAL_MB MB of 1 KiB values (acks=1); the last
(active) segment of each partition stays local, every sealed one goes remote. Reference:
boto3 over files of exactly the sizes the broker uploaded, one PUT up to 8 MiB and multipart
in 8 MiB parts (two in flight) above, as the broker; no CRC32 checksums (object_store sends
none); both sign payloads (SHA-256). Each figure: the median of $REPEAT rounds, a fresh broker
and bucket each; each ratio: the median of the rounds' ratios, their range in brackets.
MB = 10^6 bytes.

$TABLES

## Broker warnings and errors

\`\`\`
${PROBLEMS:-(none)}
\`\`\`

## Commands (round 1; later rounds the same, with their own port, directory and bucket)

\`\`\`
$COMMANDS\`\`\`

## Raw (bench/tiering.py's JSON lines)

\`\`\`
$(cat "$RESULTS")
\`\`\`
EOF2
echo "== wrote bench/RESULTS-tiering.md"
