//! `tidelog-bench`: the load generator and the machine references that `bench/run` compares the
//! broker with.
//!
//! - `load`: N producer and M consumer connections over K partitions of one topic, paced on a
//!   fixed schedule or flat out, with per-message send→ack and send→consume latency in HDR
//!   histograms measured from the intended send time (coordinated omission corrected), and the
//!   broker's CPU seconds per GB from /proc. `load --catch-up` reads a topic from offset 0.
//! - `disk-ref` (fdatasync after each write, or `--no-sync`; flat out, or paced with
//!   `--rate-per-s`), `tcp-ref` (loopback socket copy and ping-pong), `mem-ref` (memcpy): the
//!   machine's own limits.
//! - `ingest-ref` (loopback recv + buffered file write) and `serve-ref` (page-cache file sent over
//!   loopback by pread+write or sendfile): what the kernel alone costs, in thread CPU seconds per
//!   GB, for the work a broker does to ingest and to serve.
//! - `populate`, `wait-ready`, `idle-conns`: the scale workloads (many partitions, start-up time,
//!   many idle connections).
//! - no subcommand: the original produce-then-fetch throughput run.
//!
//! The benchmark starts nothing itself. The produce phase writes fixed-size messages in
//! uncompressed batches for `--duration-s`, each connection keeping up to `--in-flight` requests
//! pipelined (Kafka's max.in.flight.requests.per.connection default is 5). The fetch phase then
//! reads everything back from offset 0 (a catch-up consumer). Each prints a human line; the run
//! ends with one JSON line for scripts.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::ApiKey;
use serde_json::json;
use tidelog_bench::{
    build_batch, error_code, fetched_records, list_offsets_timestamp, produce_partition,
    summarize_batches, KafkaClient, NewRecord,
};

#[derive(Parser)]
#[command(name = "tidelog-bench", about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Measures sequential appends with fdatasync after each block: the disk's own ceiling for
    /// an acks=all broker that syncs every batch.
    DiskRef(DiskRefArgs),
    /// Producers and consumers against one topic, with HDR latency histograms (see `load::`).
    Load(load::LoadArgs),
    /// Loopback TCP: bulk copy over one socket pair (MB/s) and 1-byte ping-pong latency.
    TcpRef(refs::TcpRefArgs),
    /// memcpy bandwidth between two buffers larger than the caches.
    MemRef(refs::MemRefArgs),
    /// The kernel's floor for ingesting: one loopback connection received into a reused buffer
    /// and written (buffered) to a file; the receiving thread's CPU per GB.
    IngestRef(refs::IngestRefArgs),
    /// The kernel's floor for serving from the page cache: a cached file sent over one loopback
    /// connection by pread+write or sendfile; the sending thread's CPU per GB.
    ServeRef(refs::ServeRefArgs),
    /// Creates many topics with CreateTopics in chunks and produces one small batch to every
    /// partition.
    Populate(scale::PopulateArgs),
    /// Polls until the broker answers Metadata with at least N partitions; prints the wait.
    WaitReady(scale::WaitReadyArgs),
    /// Opens N connections (one ApiVersions each), holds them, and reports the broker's RSS.
    IdleConns(scale::IdleConnsArgs),
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Broker address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "tidelog-bench")]
    topic: String,
    /// Partitions of the topic (created if missing).
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Value bytes per message.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Target payload bytes per batch (Kafka's batch.size default is 16384).
    #[arg(long, default_value_t = 16384)]
    batch_bytes: usize,
    /// 0, 1 or -1 (all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// Length of the produce phase.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Pipelined produce requests per connection.
    #[arg(long, default_value_t = 5)]
    in_flight: usize,
    /// Largest fetch response asked for, per request.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    fetch_max_bytes: i32,
}

#[derive(Args)]
struct DiskRefArgs {
    /// Directory to write the scratch file in (use the broker's file system).
    #[arg(long)]
    dir: PathBuf,
    /// Bytes per write; each write is followed by fdatasync.
    #[arg(long, default_value_t = 1024 * 1024)]
    block_bytes: usize,
    /// Total bytes written.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    total_bytes: u64,
    /// Files written round-robin (one per partition), as a broker with that many partitions
    /// does.
    #[arg(long, default_value_t = 1)]
    files: usize,
    /// Threads sharing the files (one per shard), each syncing its own files in turn.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Buffered writes only, no fdatasync (the page-cache reference).
    #[arg(long)]
    no_sync: bool,
    /// Paced: this many writes per second in all, on an open-loop schedule (write k is due at
    /// k / R s; a writer that is behind does not sleep), for --duration-s instead of
    /// --total-bytes. With several threads, thread t writes k = t, t + threads, ...
    #[arg(long, requires = "duration_s")]
    rate_per_s: Option<f64>,
    /// With --rate-per-s: how long to write, in seconds.
    #[arg(long, requires = "rate_per_s")]
    duration_s: Option<f64>,
}

/// What one disk-ref thread measured.
struct DiskRefTally {
    writes: u64,
    sync_us: Vec<u32>,
    /// Largest delay of a paced write behind its due time.
    max_late_us: u64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::DiskRef(args)) => disk_ref(&args),
        Some(Command::TcpRef(args)) => refs::tcp_ref(&args),
        Some(Command::MemRef(args)) => refs::mem_ref(&args),
        Some(Command::IngestRef(args)) => refs::ingest_ref(&args),
        Some(Command::ServeRef(args)) => refs::serve_ref(&args),
        Some(Command::Load(args)) => runtime()?.block_on(load::load(args)),
        Some(Command::Populate(args)) => runtime()?.block_on(scale::populate(args)),
        Some(Command::WaitReady(args)) => runtime()?.block_on(scale::wait_ready(args)),
        Some(Command::IdleConns(args)) => runtime()?.block_on(scale::idle_conns(args)),
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(cli.run))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn disk_ref(args: &DiskRefArgs) -> Result<()> {
    ensure!(args.block_bytes > 0, "--block-bytes must be positive");
    ensure!(
        args.files > 0 && args.threads > 0,
        "--files and --threads must be positive"
    );
    // Some((writes per second, seconds)) when paced.
    let pace = match (args.rate_per_s, args.duration_s) {
        (Some(rate), Some(duration_s)) => {
            ensure!(
                rate > 0.0 && duration_s > 0.0,
                "--rate-per-s and --duration-s must be positive"
            );
            ensure!(
                !args.no_sync,
                "--rate-per-s measures fdatasync: drop --no-sync"
            );
            Some((rate, duration_s))
        }
        _ => None,
    };
    let threads = args.threads.min(args.files);
    let paths: Vec<PathBuf> = (0..args.files)
        .map(|i| {
            args.dir
                .join(format!("disk-ref-{}-{i}.tmp", std::process::id()))
        })
        .collect();
    let block: Vec<u8> = (0..args.block_bytes)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let block_count = (args.total_bytes / args.block_bytes as u64).max(1);
    let per_thread = block_count.div_ceil(threads as u64);
    let started = Instant::now();
    let mut tallies: Vec<DiskRefTally> = Vec::new();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<&PathBuf> = paths.iter().skip(t).step_by(threads).collect();
                let block = &block;
                scope.spawn(move || -> Result<DiskRefTally> {
                    let mut files = mine
                        .iter()
                        .map(|path| {
                            std::fs::File::create(path)
                                .with_context(|| format!("creating {}", path.display()))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let count = files.len();
                    let mut tally = DiskRefTally {
                        writes: 0,
                        sync_us: Vec::with_capacity(match pace {
                            Some((rate, duration_s)) => (rate * duration_s) as usize / threads + 1,
                            None => per_thread as usize,
                        }),
                        max_late_us: 0,
                    };
                    for i in 0.. {
                        match pace {
                            Some((rate, duration_s)) => {
                                // Global write k = i * threads + t is due at k / rate.
                                let due_s = (i * threads + t) as f64 / rate;
                                if due_s >= duration_s {
                                    break;
                                }
                                let due = started + Duration::from_secs_f64(due_s);
                                let now = Instant::now();
                                if now < due {
                                    std::thread::sleep(due - now);
                                } else {
                                    tally.max_late_us =
                                        tally.max_late_us.max((now - due).as_micros() as u64);
                                }
                            }
                            None if i as u64 >= per_thread => break,
                            None => {}
                        }
                        let file = &mut files[i % count];
                        file.write_all(block)?;
                        tally.writes += 1;
                        if !args.no_sync {
                            let sync_started = Instant::now();
                            file.sync_data()?;
                            tally
                                .sync_us
                                .push(sync_started.elapsed().as_micros() as u32);
                        }
                    }
                    Ok(tally)
                })
            })
            .collect();
        for worker in workers {
            tallies.push(
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a disk-ref thread panicked"))??,
            );
        }
        Ok(())
    })?;
    let elapsed_s = started.elapsed().as_secs_f64();
    for path in &paths {
        std::fs::remove_file(path)?;
    }
    let block_count: u64 = tallies.iter().map(|t| t.writes).sum();
    let max_late_us = tallies.iter().map(|t| t.max_late_us).max().unwrap_or(0);
    let mut sync_us: Vec<u32> = tallies.into_iter().flat_map(|t| t.sync_us).collect();
    let bytes = block_count * args.block_bytes as u64;
    let mb_per_s = bytes as f64 / 1e6 / elapsed_s;
    let syncs_per_s = if args.no_sync {
        0.0
    } else {
        block_count as f64 / elapsed_s
    };
    sync_us.sort_unstable();
    let sync_percentile_us = |p: f64| -> u32 {
        if sync_us.is_empty() {
            return 0;
        }
        sync_us[((sync_us.len() - 1) as f64 * p).round() as usize]
    };
    let sync_max_us = sync_us.last().copied().unwrap_or(0);
    let paced = match pace {
        Some((rate, duration_s)) => format!(
            ", paced at {rate:.0} writes/s for {duration_s} s (made {:.0}/s, at most {:.1} ms behind)",
            block_count as f64 / elapsed_s,
            max_late_us as f64 / 1000.0
        ),
        None => String::new(),
    };
    println!(
        "disk-ref: {block_count} x {} B appends {} over {} file(s), {threads} thread(s){paced}: {mb_per_s:.1} MB/s, {syncs_per_s:.0} syncs/s, sync p50 {} us p99 {} us p999 {} us max {} us",
        args.block_bytes,
        if args.no_sync { "buffered (no sync)" } else { "with fdatasync" },
        args.files,
        sync_percentile_us(0.5),
        sync_percentile_us(0.99),
        sync_percentile_us(0.999),
        sync_max_us,
    );
    let mut result = json!({
        "mode": "disk-ref",
        "block_bytes": args.block_bytes,
        "files": args.files,
        "threads": threads,
        "total_bytes": bytes,
        "elapsed_s": elapsed_s,
        "mb_per_s": mb_per_s,
        "syncs_per_s": syncs_per_s,
        "no_sync": args.no_sync,
        "sync_p50_us": sync_percentile_us(0.5),
        "sync_p99_us": sync_percentile_us(0.99),
        "sync_p999_us": sync_percentile_us(0.999),
        "sync_max_us": sync_max_us,
        "syncs": sync_us.len(),
    });
    if let Some((rate, duration_s)) = pace {
        // Every due write is made; a disk slower than the rate stretches the run instead.
        let kept = block_count as f64 / elapsed_s;
        result["target_rate_per_s"] = json!(rate);
        result["duration_s"] = json!(duration_s);
        result["writes_per_s"] = json!(kept);
        result["max_late_ms"] = json!(max_late_us as f64 / 1000.0);
        result["rate_kept"] = json!(kept >= 0.95 * rate);
    }
    println!("{result}");
    Ok(())
}

/// What one connection did in the produce phase.
#[derive(Default)]
struct ProduceTally {
    messages: u64,
    requests: u64,
    latencies_us: Vec<u64>,
}

async fn run(args: RunArgs) -> Result<()> {
    ensure!(args.partitions > 0, "--partitions must be positive");
    ensure!(args.connections > 0, "--connections must be positive");
    ensure!(args.in_flight > 0, "--in-flight must be positive");
    ensure!(matches!(args.acks, -1..=1), "--acks must be 0, 1 or -1");
    let records_per_batch = (args.batch_bytes / args.message_bytes).max(1);

    let mut admin = KafkaClient::connect(&args.bootstrap).await?;
    ensure_topic(&mut admin, &args).await?;

    // Produce phase.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_s);
    let mut tasks = Vec::new();
    for connection in 0..args.connections {
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            produce_connection(&args, connection, records_per_batch, deadline).await
        }));
    }
    let mut produced = ProduceTally::default();
    for task in tasks {
        let tally = task.await??;
        produced.messages += tally.messages;
        produced.requests += tally.requests;
        produced.latencies_us.extend(tally.latencies_us);
    }
    let produce_s = started.elapsed().as_secs_f64();
    produced.latencies_us.sort_unstable();
    let percentile_ms = |p: f64| -> f64 {
        if produced.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((produced.latencies_us.len() - 1) as f64 * p).round() as usize;
        produced.latencies_us[index] as f64 / 1000.0
    };
    let produce_mb_per_s = (produced.messages * args.message_bytes as u64) as f64 / 1e6 / produce_s;
    let produce_msgs_per_s = produced.messages as f64 / produce_s;
    println!(
        "produce: {} messages of {} B in {produce_s:.1} s: {produce_mb_per_s:.1} MB/s, {produce_msgs_per_s:.0} msg/s, \
         p50 {:.2} ms, p99 {:.2} ms (acks={}, {} connections x {} in flight, {} msgs/batch)",
        produced.messages,
        args.message_bytes,
        percentile_ms(0.50),
        percentile_ms(0.99),
        args.acks,
        args.connections,
        args.in_flight,
        records_per_batch
    );

    // Fetch phase: read everything back from 0.
    let mut end_offsets = Vec::new();
    for partition in 0..args.partitions {
        let latest = admin
            .list_offsets(&args.topic, partition, list_offsets_timestamp::LATEST)
            .await?;
        ensure!(
            latest.error_code == error_code::NONE,
            "ListOffsets {}-{partition}: error {}",
            args.topic,
            latest.error_code
        );
        end_offsets.push(latest.offset);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..args.connections {
        let args = args.clone();
        let end_offsets = end_offsets.clone();
        tasks.push(tokio::spawn(async move {
            fetch_connection(&args, connection, &end_offsets).await
        }));
    }
    let mut fetched_messages = 0u64;
    let mut fetched_wire_bytes = 0u64;
    for task in tasks {
        let (messages, wire_bytes) = task.await??;
        fetched_messages += messages;
        fetched_wire_bytes += wire_bytes;
    }
    let fetch_s = started.elapsed().as_secs_f64();
    let fetch_mb_per_s = (fetched_messages * args.message_bytes as u64) as f64 / 1e6 / fetch_s;
    let fetch_msgs_per_s = fetched_messages as f64 / fetch_s;
    println!(
        "fetch: {fetched_messages} messages ({fetched_wire_bytes} B on the wire) in {fetch_s:.1} s: \
         {fetch_mb_per_s:.1} MB/s, {fetch_msgs_per_s:.0} msg/s"
    );
    let total_end: i64 = end_offsets.iter().sum();
    println!(
        "{}",
        json!({
            "mode": "run",
            "acks": args.acks,
            "message_bytes": args.message_bytes,
            "batch_bytes": args.batch_bytes,
            "records_per_batch": records_per_batch,
            "partitions": args.partitions,
            "connections": args.connections,
            "in_flight": args.in_flight,
            "produce_s": produce_s,
            "produce_messages": produced.messages,
            "produce_requests": produced.requests,
            "produce_mb_per_s": produce_mb_per_s,
            "produce_msgs_per_s": produce_msgs_per_s,
            "produce_p50_ms": percentile_ms(0.50),
            "produce_p99_ms": percentile_ms(0.99),
            "log_end_offsets_total": total_end,
            "fetch_s": fetch_s,
            "fetch_messages": fetched_messages,
            "fetch_mb_per_s": fetch_mb_per_s,
            "fetch_msgs_per_s": fetch_msgs_per_s,
        })
    );
    ensure!(
        fetched_messages as i64 >= total_end,
        "fetched {fetched_messages} messages, fewer than the {total_end} in the log"
    );
    Ok(())
}

/// Creates the topic unless it exists with enough partitions.
async fn ensure_topic(admin: &mut KafkaClient, args: &RunArgs) -> Result<()> {
    ensure_topic_named(admin, &args.topic, args.partitions).await
}

/// Creates `topic` with `partitions` unless it exists with at least that many.
async fn ensure_topic_named(
    admin: &mut KafkaClient,
    topic_name: &str,
    partitions: i32,
) -> Result<()> {
    let result = admin.create_topic(topic_name, partitions, &[]).await?;
    if result.error_code != error_code::NONE
        && result.error_code != error_code::TOPIC_ALREADY_EXISTS
    {
        bail!(
            "creating {topic_name}: error {} {:?}",
            result.error_code,
            result.error_message
        );
    }
    let metadata = admin.metadata(Some(&[topic_name])).await?;
    let topic = metadata
        .topics
        .first()
        .context("Metadata lacks the topic")?;
    ensure!(
        topic.error_code == error_code::NONE && topic.partitions.len() >= partitions as usize,
        "topic {topic_name} has error {} and {} partitions",
        topic.error_code,
        topic.partitions.len()
    );
    Ok(())
}

/// Partitions served by `connection`: round robin, and at least one.
fn partitions_of(args: &RunArgs, connection: usize) -> Vec<i32> {
    let owned: Vec<i32> = (0..args.partitions)
        .filter(|p| *p as usize % args.connections == connection)
        .collect();
    if owned.is_empty() {
        vec![(connection % args.partitions as usize) as i32]
    } else {
        owned
    }
}

fn message_batch(args: &RunArgs, connection: usize, records_per_batch: usize) -> Bytes {
    // Varied bytes so nothing along the way can shortcut on zeros.
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ connection as u64;
    let records: Vec<NewRecord> = (0..records_per_batch)
        .map(|_| {
            let value: Vec<u8> = (0..args.message_bytes)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            NewRecord::value(value)
        })
        .collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    build_batch(&records, now_ms)
}

async fn produce_connection(
    args: &RunArgs,
    connection: usize,
    records_per_batch: usize,
    deadline: Instant,
) -> Result<ProduceTally> {
    let mut client = KafkaClient::connect(&args.bootstrap).await?;
    let version = client.version_for(ApiKey::Produce).await?;
    let batch = message_batch(args, connection, records_per_batch);
    let partitions = partitions_of(args, connection);
    let mut tally = ProduceTally::default();
    let mut sent_at: VecDeque<(Instant, i32)> = VecDeque::new();
    let mut next = 0usize;
    loop {
        let producing = Instant::now() < deadline;
        if producing && (args.acks == 0 || sent_at.len() < args.in_flight) {
            let partition = partitions[next % partitions.len()];
            next += 1;
            let request =
                KafkaClient::produce_request(&[(&args.topic, partition, batch.clone())], args.acks);
            tally.requests += 1;
            if args.acks == 0 {
                client.write_request(version, &request).await?;
                tally.messages += records_per_batch as u64;
            } else {
                client.write_pipelined(version, &request).await?;
                sent_at.push_back((Instant::now(), partition));
            }
            continue;
        }
        let Some((sent, partition)) = sent_at.pop_front() else {
            break;
        };
        let response = client.read_pipelined::<ProduceRequest>(version).await?;
        tally.latencies_us.push(sent.elapsed().as_micros() as u64);
        let result = produce_partition(&response, &args.topic, partition)?;
        ensure!(
            result.error_code == error_code::NONE,
            "produce to {}-{partition}: error {}",
            args.topic,
            result.error_code
        );
        tally.messages += records_per_batch as u64;
    }
    Ok(tally)
}

/// Reads the connection's partitions from 0 to their end offsets; returns (messages, wire bytes).
async fn fetch_connection(
    args: &RunArgs,
    connection: usize,
    end_offsets: &[i64],
) -> Result<(u64, u64)> {
    let mut client = KafkaClient::connect(&args.bootstrap).await?;
    let mut positions: Vec<(i32, i64)> = partitions_of(args, connection)
        .into_iter()
        .map(|p| (p, 0))
        .collect();
    // Connections sharing a partition (more connections than partitions) read it once.
    if args.connections > args.partitions as usize && connection >= args.partitions as usize {
        positions.clear();
    }
    let mut messages = 0u64;
    let mut wire_bytes = 0u64;
    let give_up_at = Instant::now() + Duration::from_secs(120);
    loop {
        let wanted: Vec<(&str, i32, i64)> = positions
            .iter()
            .filter(|(p, offset)| *offset < end_offsets[*p as usize])
            .map(|(p, offset)| (args.topic.as_str(), *p, *offset))
            .collect();
        if wanted.is_empty() {
            return Ok((messages, wire_bytes));
        }
        ensure!(Instant::now() < give_up_at, "fetch phase took over 120 s");
        let response = client
            .fetch_many(&wanted, 500, 1, args.fetch_max_bytes)
            .await?;
        for (_, partition, _) in &wanted {
            let records = fetched_records(&response, &args.topic, *partition)?;
            let position = positions
                .iter_mut()
                .find(|(p, _)| p == partition)
                .expect("asked partition");
            for batch in summarize_batches(&records)? {
                if batch.next_offset <= position.1 {
                    continue;
                }
                messages += batch.record_count as u64;
                wire_bytes += batch.total_bytes as u64;
                position.1 = batch.next_offset;
            }
        }
    }
}

/// Helpers shared by the subcommands below: broker /proc samples, HDR percentiles, fast record
/// batch encoding and record walking.
mod common {
    use anyhow::{ensure, Context, Result};
    use bytes::{BufMut, BytesMut};
    use hdrhistogram::Histogram;
    use serde_json::{json, Value};
    use tidelog_bench::batch_layout;

    /// utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat).
    pub fn cpu_seconds(pid: u32) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        // The command name (field 2) may hold spaces; fields after it follow the last ')'.
        let after = &stat[stat.rfind(')').context("malformed stat")? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = fields[11].parse()?;
        let stime: f64 = fields[12].parse()?;
        // SAFETY: sysconf has no preconditions.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok((utime + stime) / ticks_per_s)
    }

    /// Resident memory of a process in bytes (VmRSS).
    pub fn rss_bytes(pid: u32) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .context("no VmRSS")?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed VmRSS")?
            .parse()?;
        Ok(kib * 1024)
    }

    pub fn new_histogram() -> Histogram<u64> {
        Histogram::new(3).expect("3 significant digits is valid")
    }

    /// p50/p99/p999/max in milliseconds, and the count.
    pub fn histogram_json(histogram: &Histogram<u64>) -> Value {
        let ms = |us: u64| us as f64 / 1000.0;
        json!({
            "count": histogram.len(),
            "p50_ms": ms(histogram.value_at_quantile(0.50)),
            "p99_ms": ms(histogram.value_at_quantile(0.99)),
            "p999_ms": ms(histogram.value_at_quantile(0.999)),
            "max_ms": ms(histogram.max()),
            "mean_ms": histogram.mean() / 1000.0,
        })
    }

    pub fn histogram_line(histogram: &Histogram<u64>) -> String {
        if histogram.is_empty() {
            return "no samples".to_string();
        }
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "p50 {:8.3}  p99 {:8.3}  p999 {:8.3}  max {:8.3} ms  ({} messages)",
            ms(0.5),
            ms(0.99),
            ms(0.999),
            histogram.max() as f64 / 1000.0,
            histogram.len()
        )
    }

    fn zigzag(value: i64) -> u64 {
        ((value << 1) ^ (value >> 63)) as u64
    }

    pub fn varint_len(value: i64) -> usize {
        let mut v = zigzag(value);
        let mut len = 1;
        while v >= 0x80 {
            v >>= 7;
            len += 1;
        }
        len
    }

    pub fn put_varint(buf: &mut BytesMut, value: i64) {
        let mut v = zigzag(value);
        while v >= 0x80 {
            buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        buf.put_u8(v as u8);
    }

    /// Reads a zigzag varint at `*pos`, advancing it.
    pub fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<i64> {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            ensure!(*pos < bytes.len() && shift < 64, "truncated varint");
            let byte = bytes[*pos];
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
            shift += 7;
        }
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    /// Encodes an uncompressed record batch v2 (no producer id, CreateTime) straight into `buf`:
    /// `count` records whose value is an 8-byte little-endian stamp (`stamp(i)`) followed by
    /// payload bytes, with an optional key per record. No allocation per record.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_batch(
        buf: &mut BytesMut,
        count: usize,
        message_bytes: usize,
        payload: &[u8],
        payload_offset: usize,
        mut key: impl FnMut(usize, &mut Vec<u8>) -> bool,
        mut stamp: impl FnMut(usize) -> u64,
        timestamp_ms: i64,
    ) {
        assert!(count > 0 && message_bytes >= 8);
        buf.clear();
        let start = buf.len();
        buf.put_i64(0); // base offset
        buf.put_i32(0); // batch length, below
        buf.put_i32(-1); // partition leader epoch
        buf.put_i8(2); // magic
        buf.put_u32(0); // crc, below
        buf.put_i16(0); // attributes
        buf.put_i32(count as i32 - 1);
        buf.put_i64(timestamp_ms);
        buf.put_i64(timestamp_ms);
        buf.put_i64(-1);
        buf.put_i16(-1);
        buf.put_i32(-1);
        buf.put_i32(count as i32);
        let mut key_bytes = Vec::with_capacity(32);
        let tail = payload.len() - message_bytes;
        for i in 0..count {
            key_bytes.clear();
            let has_key = key(i, &mut key_bytes);
            let key_len: i64 = if has_key { key_bytes.len() as i64 } else { -1 };
            let key_field = varint_len(key_len) + key_bytes.len();
            let record_len = 1
                + 1 // timestamp delta 0
                + varint_len(i as i64)
                + key_field
                + varint_len(message_bytes as i64)
                + message_bytes
                + 1; // header count 0
            put_varint(buf, record_len as i64);
            buf.put_i8(0);
            put_varint(buf, 0);
            put_varint(buf, i as i64);
            put_varint(buf, key_len);
            buf.put_slice(&key_bytes);
            put_varint(buf, message_bytes as i64);
            buf.put_u64_le(stamp(i));
            let from = (payload_offset + i * 61) % tail.max(1);
            buf.put_slice(&payload[from..from + message_bytes - 8]);
            put_varint(buf, 0);
        }
        let total = buf.len() - start;
        let batch_length = (total - batch_layout::LOG_OVERHEAD) as i32;
        buf[start + 8..start + 12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c(&buf[start + batch_layout::ATTRIBUTES..]);
        buf[start + batch_layout::CRC..start + batch_layout::CRC + 4]
            .copy_from_slice(&crc.to_be_bytes());
    }

    /// Calls `visit(offset, value)` for each record of the complete uncompressed batches in
    /// `bytes` whose offset is at least `from_offset`.
    pub fn for_each_value(
        bytes: &[u8],
        from_offset: i64,
        mut visit: impl FnMut(i64, &[u8]),
    ) -> Result<()> {
        let mut position = 0;
        for summary in tidelog_bench::summarize_batches(bytes)? {
            let batch = &bytes[position..position + summary.total_bytes];
            position += summary.total_bytes;
            if summary.next_offset <= from_offset {
                continue;
            }
            let attributes = u16::from_be_bytes([
                batch[batch_layout::ATTRIBUTES],
                batch[batch_layout::ATTRIBUTES + 1],
            ]);
            ensure!(attributes & 0x7 == 0, "compressed batches are not decoded");
            let mut pos = batch_layout::HEADER_BYTES;
            for _ in 0..summary.record_count {
                let record_len = get_varint(batch, &mut pos)? as usize;
                let record_end = pos + record_len;
                ensure!(record_end <= batch.len(), "record overruns its batch");
                pos += 1; // attributes
                get_varint(batch, &mut pos)?; // timestamp delta
                let offset_delta = get_varint(batch, &mut pos)?;
                let key_len = get_varint(batch, &mut pos)?;
                if key_len > 0 {
                    pos += key_len as usize;
                }
                let value_len = get_varint(batch, &mut pos)?;
                let offset = summary.base_offset + offset_delta;
                if value_len >= 0 && offset >= from_offset {
                    let end = (pos + value_len as usize).min(record_end);
                    visit(offset, &batch[pos..end]);
                }
                pos = record_end;
            }
        }
        Ok(())
    }

    /// Pseudo-random bytes (xorshift), so that nothing along the way can shortcut on zeros.
    pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }
}

/// `tidelog-bench load`: the OpenMessaging-Benchmark-like load generator.
///
/// Timing: every task shares one `Instant` origin. With `--rate`, message j of a producer is due
/// at `t0 + j / (rate / producers)`; a batch leaves when `--batch-bytes` worth of messages are
/// due or the oldest due one has waited `--linger-ms`, and every latency is measured from the
/// message's due time, not from when it was actually written (coordinated omission: a stalled
/// broker delays the schedule, and that delay counts). Open throttle (`--rate 0`) sends full
/// batches as fast as `--in-flight` allows and measures from the actual send. The due time (in
/// microseconds since the origin) is the first 8 bytes of every value, so consumers measure
/// send→consume per message. Only messages due inside the measured window (after `--warmup-s`,
/// for `--duration-s`) are counted, in throughput and in latency.
mod load {
    use std::io::Write as _;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use anyhow::{ensure, Context, Result};
    use bytes::{Bytes, BytesMut};
    use clap::{Args, ValueEnum};
    use hdrhistogram::Histogram;
    use kafka_protocol::messages::produce_request::ProduceRequest;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::StrBytes;
    use serde_json::json;
    use tidelog_bench::{
        decode_response_frame, encode_request_frame, error_code, fetched_records,
        list_offsets_timestamp, produce_partition, summarize_batches, KafkaClient,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::{mpsc, Semaphore};

    use crate::common::*;

    #[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
    pub enum KeyDistribution {
        /// No key (null).
        None,
        /// Keys 0, 1, 2, … over the key space, in turn.
        RoundRobin,
        /// A uniformly random key from the key space.
        Random,
    }

    #[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
    pub enum Compression {
        /// Uncompressed batches (the only codec implemented here).
        None,
    }

    #[derive(Args, Clone)]
    pub struct LoadArgs {
        /// Broker address, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:9092")]
        pub bootstrap: String,
        #[arg(long, default_value = "tidelog-load")]
        pub topic: String,
        /// Partitions of the topic (created if missing).
        #[arg(long, default_value_t = 16)]
        pub partitions: i32,
        /// Producer connections; each owns the partitions p with p % producers == its index.
        #[arg(long, default_value_t = 4)]
        pub producers: usize,
        /// Consumer connections, reading from the log end (or from 0 with --catch-up).
        #[arg(long, default_value_t = 0)]
        pub consumers: usize,
        /// Value bytes per message (at least 8: the first 8 carry the due time).
        #[arg(long, default_value_t = 1024)]
        pub message_bytes: usize,
        /// Largest batch, in value bytes (Kafka's batch.size default is 16384).
        #[arg(long, default_value_t = 16384)]
        pub batch_bytes: usize,
        /// With --rate: longest a due message waits for its batch to fill.
        #[arg(long, default_value_t = 1)]
        pub linger_ms: u64,
        /// Record keys. Keys change the record bytes only: partitions are still assigned per
        /// batch, round robin over the producer's partitions.
        #[arg(long, value_enum, default_value_t = KeyDistribution::None)]
        pub keys: KeyDistribution,
        #[arg(long, default_value_t = 10_000)]
        pub key_space: u64,
        #[arg(long, value_enum, default_value_t = Compression::None)]
        pub compression: Compression,
        /// 0, 1 or -1 (all).
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        pub acks: i16,
        /// Target messages per second over all producers; 0 for open throttle.
        #[arg(long, default_value_t = 0.0)]
        pub rate: f64,
        /// Measured window.
        #[arg(long, default_value_t = 10.0)]
        pub duration_s: f64,
        /// Load before the measured window, excluded from every figure.
        #[arg(long, default_value_t = 2.0)]
        pub warmup_s: f64,
        /// Pipelined produce requests per producer connection.
        #[arg(long, default_value_t = 5)]
        pub in_flight: usize,
        /// No producers: consumers read the topic from offset 0 to its end as of the start.
        #[arg(long)]
        pub catch_up: bool,
        #[arg(long, default_value_t = 8 * 1024 * 1024)]
        pub fetch_max_bytes: i32,
        #[arg(long, default_value_t = 100)]
        pub fetch_max_wait_ms: i32,
        /// Broker process to sample CPU time (/proc/PID/stat) over the measured window.
        #[arg(long)]
        pub broker_pid: Option<u32>,
        /// A name carried into the JSON line.
        #[arg(long, default_value = "")]
        pub label: String,
    }

    /// The schedule shared by every task, in microseconds since `origin`.
    #[derive(Clone, Copy)]
    struct Clock {
        origin: Instant,
        t0_us: u64,
        window_start_us: u64,
        window_end_us: u64,
        /// Due-time spacing of one producer's messages; 0 for open throttle.
        interval_us: f64,
    }

    impl Clock {
        fn now_us(&self) -> u64 {
            self.origin.elapsed().as_micros() as u64
        }
        fn at(&self, us: u64) -> Instant {
            self.origin + Duration::from_micros(us)
        }
        fn due_us(&self, index: u64) -> u64 {
            self.t0_us + (index as f64 * self.interval_us) as u64
        }
        fn in_window(&self, us: u64) -> bool {
            us >= self.window_start_us && us < self.window_end_us
        }
    }

    /// One produce request in flight.
    struct Sent {
        correlation_id: i32,
        partition: i32,
        first_index: u64,
        count: u64,
        sent_us: u64,
    }

    struct ProduceTally {
        messages: u64,
        requests: u64,
        /// Due inside the window but never sent (the producer fell behind its schedule).
        unsent_due: u64,
        ack_latency: Histogram<u64>,
        /// Per produce request, from writing it to reading its response: the broker's
        /// answer time, without the client-side batching wait that message latency includes.
        request_latency: Histogram<u64>,
    }

    struct ConsumeTally {
        messages: u64,
        wire_bytes: u64,
        e2e_latency: Histogram<u64>,
    }

    pub async fn load(args: LoadArgs) -> Result<()> {
        ensure!(args.partitions > 0, "--partitions must be positive");
        ensure!(args.in_flight > 0, "--in-flight must be positive");
        ensure!(matches!(args.acks, -1..=1), "--acks must be 0, 1 or -1");
        ensure!(
            args.message_bytes >= 8,
            "--message-bytes must be at least 8"
        );
        ensure!(args.key_space > 0, "--key-space must be positive");
        ensure!(
            args.catch_up || args.producers > 0,
            "--producers must be positive (or use --catch-up)"
        );
        let mut admin = KafkaClient::connect(&args.bootstrap).await?;
        crate::ensure_topic_named(&mut admin, &args.topic, args.partitions).await?;
        if args.catch_up {
            return catch_up(args, admin).await;
        }
        let version = admin.version_for(ApiKey::Produce).await?;
        let records_per_batch = (args.batch_bytes / args.message_bytes).max(1) as u64;

        // Consumers start from the log end as of now.
        let mut consumer_clients = Vec::new();
        for consumer in 0..args.consumers {
            let mut client = KafkaClient::connect(&args.bootstrap).await?;
            let mut positions = Vec::new();
            for partition in owned_partitions(args.partitions, args.consumers, consumer, true) {
                positions.push((
                    partition,
                    latest_offset(&mut client, &args.topic, partition).await?,
                ));
            }
            consumer_clients.push((client, positions));
        }
        let mut producer_streams = Vec::new();
        for _ in 0..args.producers {
            let stream = TcpStream::connect(&args.bootstrap).await?;
            stream.set_nodelay(true)?;
            producer_streams.push(stream);
        }

        let origin = Instant::now();
        let t0_us = 20_000;
        let window_start_us = t0_us + (args.warmup_s * 1e6) as u64;
        let clock = Clock {
            origin,
            t0_us,
            window_start_us,
            window_end_us: window_start_us + (args.duration_s * 1e6) as u64,
            interval_us: if args.rate > 0.0 {
                1e6 * args.producers as f64 / args.rate
            } else {
                0.0
            },
        };
        let stop_at: Arc<Mutex<Option<Vec<i64>>>> = Arc::new(Mutex::new(None));
        let consumer_deadline = clock.at(clock.window_end_us) + Duration::from_secs(15);
        let consumer_tasks: Vec<_> = consumer_clients
            .into_iter()
            .map(|(client, positions)| {
                let args = args.clone();
                let stop_at = stop_at.clone();
                tokio::spawn(async move {
                    consume(
                        &args,
                        client,
                        positions,
                        clock,
                        stop_at,
                        consumer_deadline,
                        true,
                    )
                    .await
                })
            })
            .collect();
        let producer_tasks: Vec<_> = producer_streams
            .into_iter()
            .enumerate()
            .map(|(producer, stream)| {
                let args = args.clone();
                tokio::spawn(async move {
                    produce(&args, producer, stream, version, records_per_batch, clock).await
                })
            })
            .collect();

        tokio::time::sleep_until(clock.at(clock.window_start_us).into()).await;
        let cpu_before = args.broker_pid.map(cpu_seconds).transpose()?;
        tokio::time::sleep_until(clock.at(clock.window_end_us).into()).await;
        let cpu_after = args.broker_pid.map(cpu_seconds).transpose()?;

        let mut produced = ProduceTally {
            messages: 0,
            requests: 0,
            unsent_due: 0,
            ack_latency: new_histogram(),
            request_latency: new_histogram(),
        };
        for task in producer_tasks {
            let tally = task.await??;
            produced.messages += tally.messages;
            produced.requests += tally.requests;
            produced.unsent_due += tally.unsent_due;
            produced.ack_latency.add(&tally.ack_latency)?;
            produced.request_latency.add(&tally.request_latency)?;
        }
        // Consumers stop once they reach the log end as of the producers' end.
        let mut ends = Vec::new();
        for partition in 0..args.partitions {
            ends.push(latest_offset(&mut admin, &args.topic, partition).await?);
        }
        *stop_at.lock().expect("not poisoned") = Some(ends);
        let mut consumed = ConsumeTally {
            messages: 0,
            wire_bytes: 0,
            e2e_latency: new_histogram(),
        };
        for task in consumer_tasks {
            let tally = task.await??;
            consumed.messages += tally.messages;
            consumed.wire_bytes += tally.wire_bytes;
            consumed.e2e_latency.add(&tally.e2e_latency)?;
        }

        let window_s = args.duration_s;
        let produce_bytes = produced.messages * args.message_bytes as u64;
        let produce_mb_per_s = produce_bytes as f64 / 1e6 / window_s;
        let produce_msgs_per_s = produced.messages as f64 / window_s;
        let broker_cpu_s = match (cpu_before, cpu_after) {
            (Some(before), Some(after)) => Some(after - before),
            _ => None,
        };
        let cpu_s_per_gb = broker_cpu_s.map(|cpu| cpu / (produce_bytes as f64 / 1e9));
        let behind = args.rate > 0.0 && produce_msgs_per_s < 0.95 * args.rate;

        println!(
            "load {}: {} producers, {} consumers, {} partitions, {} B messages, ≤ {} per batch, acks={}, {}, {} s measured after {} s warm-up",
            args.label,
            args.producers,
            args.consumers,
            args.partitions,
            args.message_bytes,
            records_per_batch,
            args.acks,
            if args.rate > 0.0 { format!("target {:.0} msg/s", args.rate) } else { "open throttle".to_string() },
            args.duration_s,
            args.warmup_s
        );
        println!("  {:<14} {:>12} {:>10}", "", "msgs/s", "MB/s");
        println!(
            "  {:<14} {:>12.0} {:>10.1}{}",
            "produced",
            produce_msgs_per_s,
            produce_mb_per_s,
            if behind {
                "   (below the target rate: the schedule was not kept)"
            } else {
                ""
            }
        );
        if args.consumers > 0 {
            println!(
                "  {:<14} {:>12.0} {:>10.1}",
                "consumed",
                consumed.messages as f64 / window_s,
                (consumed.messages * args.message_bytes as u64) as f64 / 1e6 / window_s
            );
        }
        if args.acks != 0 {
            println!("  send→ack       {}", histogram_line(&produced.ack_latency));
            println!(
                "  request→resp.  {}",
                histogram_line(&produced.request_latency)
            );
        }
        if args.consumers > 0 {
            println!("  send→consume   {}", histogram_line(&consumed.e2e_latency));
        }
        if let (Some(cpu), Some(per_gb)) = (broker_cpu_s, cpu_s_per_gb) {
            println!("  broker CPU     {cpu:.2} s in the window, {per_gb:.3} s per GB produced");
        }
        if produced.unsent_due > 0 {
            println!(
                "  {} messages due in the window were never sent (the producers fell behind)",
                produced.unsent_due
            );
        }
        println!(
            "{}",
            json!({
                "mode": "load",
                "label": args.label,
                "producers": args.producers,
                "consumers": args.consumers,
                "partitions": args.partitions,
                "message_bytes": args.message_bytes,
                "records_per_batch": records_per_batch,
                "acks": args.acks,
                "keys": args.keys.to_possible_value().map(|v| v.get_name().to_string()),
                "target_rate": args.rate,
                "duration_s": args.duration_s,
                "warmup_s": args.warmup_s,
                "in_flight": args.in_flight,
                "produce_messages": produced.messages,
                "produce_requests": produced.requests,
                "produce_msgs_per_s": produce_msgs_per_s,
                "produce_mb_per_s": produce_mb_per_s,
                "unsent_due_messages": produced.unsent_due,
                "rate_kept": !behind,
                "ack_latency": histogram_json(&produced.ack_latency),
                "request_latency": histogram_json(&produced.request_latency),
                "consume_messages": consumed.messages,
                "consume_msgs_per_s": consumed.messages as f64 / window_s,
                "e2e_latency": histogram_json(&consumed.e2e_latency),
                "broker_cpu_s": broker_cpu_s,
                "broker_cpu_s_per_gb": cpu_s_per_gb,
            })
        );
        Ok(())
    }

    /// Partitions a connection owns: p % connections == index; with fewer partitions than
    /// connections, producers share (index % partitions) and surplus consumers get none.
    fn owned_partitions(
        partitions: i32,
        connections: usize,
        index: usize,
        consumer: bool,
    ) -> Vec<i32> {
        let owned: Vec<i32> = (0..partitions)
            .filter(|p| *p as usize % connections == index)
            .collect();
        if owned.is_empty() && !consumer {
            vec![(index % partitions as usize) as i32]
        } else {
            owned
        }
    }

    async fn latest_offset(client: &mut KafkaClient, topic: &str, partition: i32) -> Result<i64> {
        let latest = client
            .list_offsets(topic, partition, list_offsets_timestamp::LATEST)
            .await?;
        ensure!(
            latest.error_code == error_code::NONE,
            "ListOffsets {topic}-{partition}: error {}",
            latest.error_code
        );
        Ok(latest.offset)
    }

    async fn produce(
        args: &LoadArgs,
        producer: usize,
        stream: TcpStream,
        version: i16,
        records_per_batch: u64,
        clock: Clock,
    ) -> Result<ProduceTally> {
        let (mut reader, mut writer) = stream.into_split();
        let partitions = owned_partitions(args.partitions, args.producers, producer, false);
        let permits = Arc::new(Semaphore::new(args.in_flight));
        let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Sent>();

        // Reader: acknowledgements, in request order.
        let acks_task = {
            let permits = permits.clone();
            let topic = args.topic.clone();
            tokio::spawn(async move {
                let mut histogram = new_histogram();
                let mut request_histogram = new_histogram();
                let mut messages = 0u64;
                let mut body = Vec::new();
                let read_all = async {
                    while let Some(sent) = sent_rx.recv().await {
                        let frame_bytes = reader
                            .read_i32()
                            .await
                            .context("reading produce response")?;
                        ensure!(frame_bytes >= 0, "negative frame length");
                        body.resize(frame_bytes as usize, 0);
                        reader.read_exact(&mut body).await?;
                        let now_us = clock.now_us();
                        let response = decode_response_frame::<ProduceRequest>(
                            version,
                            sent.correlation_id,
                            Bytes::copy_from_slice(&body),
                        )?;
                        let result = produce_partition(&response, &topic, sent.partition)?;
                        ensure!(
                            result.error_code == error_code::NONE,
                            "produce to {topic}-{}: error {}",
                            sent.partition,
                            result.error_code
                        );
                        permits.add_permits(1);
                        if clock.in_window(sent.sent_us) {
                            request_histogram.record(now_us.saturating_sub(sent.sent_us).max(1))?;
                        }
                        for index in sent.first_index..sent.first_index + sent.count {
                            let due_us = if clock.interval_us > 0.0 {
                                clock.due_us(index)
                            } else {
                                sent.sent_us
                            };
                            if clock.in_window(due_us) {
                                messages += 1;
                                histogram.record(now_us.saturating_sub(due_us).max(1))?;
                            }
                        }
                    }
                    Ok::<_, anyhow::Error>(())
                }
                .await;
                if let Err(error) = read_all {
                    // Wakes the writer, which would otherwise wait for a permit forever.
                    permits.close();
                    return Err(error);
                }
                Ok::<_, anyhow::Error>((messages, histogram, request_histogram))
            })
        };

        let client_id = StrBytes::from_static_str("tidelog-bench-load");
        let payload = random_bytes(64 * 1024 + args.message_bytes, producer as u64);
        let mut batch = BytesMut::with_capacity(args.batch_bytes + 4096);
        let mut rng = 0x2545_f491_4f6c_dd1du64 ^ (producer as u64 + 1);
        let mut key_counter = producer as u64;
        let mut sent_count = 0u64;
        let mut requests = 0u64;
        let mut acks0_messages = 0u64;
        let mut correlation_id = 0i32;
        let linger_us = args.linger_ms * 1000;
        let end = clock.at(clock.window_end_us);
        let due_in_window = if clock.interval_us > 0.0 {
            ((clock.window_end_us - clock.t0_us) as f64 / clock.interval_us).ceil() as u64
        } else {
            0
        };
        tokio::time::sleep_until(clock.at(clock.t0_us).into()).await;
        loop {
            let now_us = clock.now_us();
            let count = if now_us >= clock.window_end_us {
                // Send what fell due inside the window and is still unsent, then stop.
                let due = due_in_window.saturating_sub(sent_count);
                if clock.interval_us == 0.0 || due == 0 {
                    break;
                }
                due.min(records_per_batch)
            } else if clock.interval_us > 0.0 {
                let due_total = ((now_us - clock.t0_us) as f64 / clock.interval_us) as u64 + 1;
                let due = due_total.saturating_sub(sent_count);
                let oldest_us = clock.due_us(sent_count);
                if due >= records_per_batch || (due > 0 && now_us >= oldest_us + linger_us) {
                    due.min(records_per_batch)
                } else {
                    let full_us = clock.due_us(sent_count + records_per_batch - 1);
                    let wake = clock.at(full_us.min(oldest_us + linger_us)).min(end);
                    tokio::time::sleep_until(wake.into()).await;
                    continue;
                }
            } else {
                records_per_batch
            };
            if args.acks != 0 {
                match permits.acquire().await {
                    Ok(permit) => permit.forget(),
                    // The ack reader failed; its error is the one to report.
                    Err(_) => return Err(acks_task.await?.expect_err("reader closed the permits")),
                }
            }
            let sent_us = clock.now_us();
            if clock.interval_us == 0.0 && sent_us >= clock.window_end_us {
                // Open throttle: the window closed while this batch waited for a permit.
                break;
            }
            let first_index = sent_count;
            encode_batch(
                &mut batch,
                count as usize,
                args.message_bytes,
                &payload,
                (first_index as usize).wrapping_mul(7919),
                |_, key| match args.keys {
                    KeyDistribution::None => false,
                    KeyDistribution::RoundRobin => {
                        key_counter = (key_counter + 1) % args.key_space;
                        let _ = write!(key, "key-{key_counter}");
                        true
                    }
                    KeyDistribution::Random => {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let _ = write!(key, "key-{}", rng % args.key_space);
                        true
                    }
                },
                |i| {
                    if clock.interval_us > 0.0 {
                        clock.due_us(first_index + i as u64)
                    } else {
                        sent_us
                    }
                },
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_millis() as i64,
            );
            let partition = partitions[requests as usize % partitions.len()];
            let request = KafkaClient::produce_request(
                &[(&args.topic, partition, batch.split().freeze())],
                args.acks,
            );
            correlation_id = correlation_id.wrapping_add(1);
            let frame = encode_request_frame(version, &request, correlation_id, &client_id)?;
            writer.write_all(&frame).await?;
            requests += 1;
            sent_count += count;
            if args.acks == 0 {
                for index in first_index..first_index + count {
                    let due_us = if clock.interval_us > 0.0 {
                        clock.due_us(index)
                    } else {
                        sent_us
                    };
                    if clock.in_window(due_us) {
                        acks0_messages += 1;
                    }
                }
            } else {
                sent_tx
                    .send(Sent {
                        correlation_id,
                        partition,
                        first_index,
                        count,
                        sent_us,
                    })
                    .ok()
                    .context("ack reader ended early")?;
            }
        }
        drop(sent_tx);
        let unsent_due = due_in_window.saturating_sub(sent_count);
        let (acked, ack_latency, request_latency) = acks_task.await??;
        Ok(ProduceTally {
            messages: if args.acks == 0 {
                acks0_messages
            } else {
                acked
            },
            requests,
            unsent_due,
            ack_latency,
            request_latency,
        })
    }

    /// Fetches the given partitions until `stop_at` is set and reached, or `deadline`. With
    /// `stamps`, records send→consume latency for messages due inside the window.
    async fn consume(
        args: &LoadArgs,
        mut client: KafkaClient,
        mut positions: Vec<(i32, i64)>,
        clock: Clock,
        stop_at: Arc<Mutex<Option<Vec<i64>>>>,
        deadline: Instant,
        stamps: bool,
    ) -> Result<ConsumeTally> {
        let mut tally = ConsumeTally {
            messages: 0,
            wire_bytes: 0,
            e2e_latency: new_histogram(),
        };
        loop {
            let stop = stop_at.lock().expect("not poisoned").clone();
            if let Some(ends) = &stop {
                if positions
                    .iter()
                    .all(|(p, offset)| *offset >= ends[*p as usize])
                {
                    break;
                }
            }
            if positions.is_empty() || Instant::now() >= deadline {
                break;
            }
            let wanted: Vec<(&str, i32, i64)> = positions
                .iter()
                .filter(|(p, offset)| stop.as_ref().is_none_or(|ends| *offset < ends[*p as usize]))
                .map(|(p, offset)| (args.topic.as_str(), *p, *offset))
                .collect();
            let response = client
                .fetch_many(&wanted, args.fetch_max_wait_ms, 1, args.fetch_max_bytes)
                .await?;
            let now_us = clock.now_us();
            for (_, partition, _) in &wanted {
                let records = fetched_records(&response, &args.topic, *partition)?;
                let position = positions
                    .iter_mut()
                    .find(|(p, _)| p == partition)
                    .expect("asked partition");
                if stamps {
                    let from = position.1;
                    for_each_value(&records, from, |_, value| {
                        if value.len() >= 8 {
                            let due_us =
                                u64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
                            if clock.in_window(due_us) {
                                tally.messages += 1;
                                let _ = tally
                                    .e2e_latency
                                    .record(now_us.saturating_sub(due_us).max(1));
                            }
                        }
                    })?;
                }
                for batch in summarize_batches(&records)? {
                    if batch.next_offset <= position.1 {
                        continue;
                    }
                    if !stamps {
                        tally.messages += batch.record_count as u64;
                    }
                    tally.wire_bytes += batch.total_bytes as u64;
                    position.1 = batch.next_offset;
                }
            }
        }
        Ok(tally)
    }

    /// Reads the topic from 0 to its end as of now, with `--consumers` connections.
    async fn catch_up(args: LoadArgs, mut admin: KafkaClient) -> Result<()> {
        ensure!(args.consumers > 0, "--catch-up needs --consumers");
        let mut ends = Vec::new();
        for partition in 0..args.partitions {
            ends.push(latest_offset(&mut admin, &args.topic, partition).await?);
        }
        let mut clients = Vec::new();
        for consumer in 0..args.consumers {
            let client = KafkaClient::connect(&args.bootstrap).await?;
            let positions: Vec<(i32, i64)> =
                owned_partitions(args.partitions, args.consumers, consumer, true)
                    .into_iter()
                    .map(|p| (p, 0))
                    .collect();
            clients.push((client, positions));
        }
        let stop_at = Arc::new(Mutex::new(Some(ends.clone())));
        let clock = Clock {
            origin: Instant::now(),
            t0_us: 0,
            window_start_us: 0,
            window_end_us: u64::MAX,
            interval_us: 0.0,
        };
        let cpu_before = args.broker_pid.map(cpu_seconds).transpose()?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(600);
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|(client, positions)| {
                let args = args.clone();
                let stop_at = stop_at.clone();
                tokio::spawn(async move {
                    consume(&args, client, positions, clock, stop_at, deadline, false).await
                })
            })
            .collect();
        let mut messages = 0u64;
        let mut wire_bytes = 0u64;
        for task in tasks {
            let tally = task.await??;
            messages += tally.messages;
            wire_bytes += tally.wire_bytes;
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        let cpu_after = args.broker_pid.map(cpu_seconds).transpose()?;
        let expected: i64 = ends.iter().sum();
        ensure!(
            messages as i64 >= expected,
            "read {messages} messages, fewer than the {expected} in the log"
        );
        let mb_per_s = wire_bytes as f64 / 1e6 / elapsed_s;
        let broker_cpu_s = match (cpu_before, cpu_after) {
            (Some(before), Some(after)) => Some(after - before),
            _ => None,
        };
        let cpu_s_per_gb = broker_cpu_s.map(|cpu| cpu / (wire_bytes as f64 / 1e9));
        println!(
            "catch-up {}: {messages} messages, {:.1} MB of batches from {} partitions with {} consumers in {elapsed_s:.2} s: {mb_per_s:.1} MB/s, {:.0} msg/s{}",
            args.label,
            wire_bytes as f64 / 1e6,
            args.partitions,
            args.consumers,
            messages as f64 / elapsed_s,
            cpu_s_per_gb.map_or(String::new(), |c| format!(", broker CPU {c:.3} s per GB served")),
        );
        println!(
            "{}",
            json!({
                "mode": "catch-up",
                "label": args.label,
                "partitions": args.partitions,
                "consumers": args.consumers,
                "messages": messages,
                "wire_bytes": wire_bytes,
                "elapsed_s": elapsed_s,
                "mb_per_s": mb_per_s,
                "msgs_per_s": messages as f64 / elapsed_s,
                "broker_cpu_s": broker_cpu_s,
                "broker_cpu_s_per_gb": cpu_s_per_gb,
            })
        );
        Ok(())
    }
}

/// The machine's own limits that are not the disk: loopback TCP and memcpy.
mod refs {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    use std::path::{Path, PathBuf};
    use std::thread::JoinHandle;
    use std::time::Instant;

    use anyhow::{anyhow, ensure, Context, Result};
    use clap::{Args, ValueEnum};
    use serde_json::json;

    #[derive(Args)]
    pub struct TcpRefArgs {
        /// Bytes copied over the socket.
        #[arg(long, default_value_t = 4 << 30)]
        pub total_bytes: u64,
        /// Bytes per write() and read().
        #[arg(long, default_value_t = 1 << 20)]
        pub block_bytes: usize,
        /// 1-byte round trips for the latency figure.
        #[arg(long, default_value_t = 20_000)]
        pub round_trips: usize,
    }

    #[derive(Args)]
    pub struct MemRefArgs {
        /// Size of each of the two buffers.
        #[arg(long, default_value_t = 256 << 20)]
        pub buffer_bytes: usize,
        /// Copies from one buffer to the other.
        #[arg(long, default_value_t = 16)]
        pub rounds: usize,
    }

    pub fn tcp_ref(args: &TcpRefArgs) -> Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let block_bytes = args.block_bytes;
        let server = std::thread::spawn(move || -> Result<u64> {
            let (mut stream, _) = listener.accept()?;
            let mut buf = vec![0u8; block_bytes];
            let mut received = 0u64;
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(received);
                }
                received += n as u64;
            }
        });
        let mut client = TcpStream::connect(addr)?;
        let block = crate::common::random_bytes(args.block_bytes, 7);
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < args.total_bytes {
            client.write_all(&block)?;
            sent += block.len() as u64;
        }
        client.shutdown(std::net::Shutdown::Write)?;
        let received = server
            .join()
            .map_err(|_| anyhow::anyhow!("server panicked"))??;
        let elapsed_s = started.elapsed().as_secs_f64();
        let mb_per_s = received as f64 / 1e6 / elapsed_s;

        // Ping-pong: the floor of any request/response latency on this machine.
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let round_trips = args.round_trips;
        let echo = std::thread::spawn(move || -> Result<()> {
            let (mut stream, _) = listener.accept()?;
            stream.set_nodelay(true)?;
            let mut byte = [0u8; 1];
            for _ in 0..round_trips {
                stream.read_exact(&mut byte)?;
                stream.write_all(&byte)?;
            }
            Ok(())
        });
        let mut client = TcpStream::connect(addr)?;
        client.set_nodelay(true)?;
        let mut histogram = crate::common::new_histogram();
        let mut byte = [1u8; 1];
        for _ in 0..round_trips {
            let sent_at = Instant::now();
            client.write_all(&byte)?;
            client.read_exact(&mut byte)?;
            histogram.record((sent_at.elapsed().as_nanos() as u64 / 1000).max(1))?;
        }
        echo.join()
            .map_err(|_| anyhow::anyhow!("echo panicked"))??;
        println!(
            "tcp-ref: {} MB over loopback in {elapsed_s:.2} s: {mb_per_s:.1} MB/s; 1-byte round trip {}",
            received / 1_000_000,
            crate::common::histogram_line(&histogram)
        );
        println!(
            "{}",
            json!({
                "mode": "tcp-ref",
                "total_bytes": received,
                "elapsed_s": elapsed_s,
                "mb_per_s": mb_per_s,
                "round_trip": crate::common::histogram_json(&histogram),
            })
        );
        Ok(())
    }

    #[derive(Args)]
    pub struct IngestRefArgs {
        /// Directory to write the scratch file in (use the broker's file system).
        #[arg(long)]
        pub dir: PathBuf,
        /// Bytes sent, received and written.
        #[arg(long, default_value_t = 2 << 30)]
        pub total_bytes: u64,
        /// Bytes per write() on the socket and per write() to the file.
        #[arg(long, default_value_t = 1 << 20)]
        pub block_bytes: usize,
    }

    #[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
    pub enum ServeMethod {
        /// pread() a block from the file into a buffer, write() it to the socket.
        Copy,
        /// sendfile() from the file to the socket, a block at a time.
        Sendfile,
    }

    #[derive(Args)]
    pub struct ServeRefArgs {
        /// Directory to write the scratch file in (use the broker's file system).
        #[arg(long)]
        pub dir: PathBuf,
        /// Size of the file served (written and read once first, so it is in the page cache).
        #[arg(long, default_value_t = 1 << 30)]
        pub total_bytes: u64,
        /// Bytes per pread()+write() or per sendfile() call.
        #[arg(long, default_value_t = 1 << 20)]
        pub block_bytes: usize,
        #[arg(long, value_enum, default_value_t = ServeMethod::Sendfile)]
        pub method: ServeMethod,
    }

    /// User + system CPU seconds of the calling thread (getrusage(RUSAGE_THREAD)).
    fn thread_cpu_s() -> Result<f64> {
        // SAFETY: rusage is plain data; getrusage fills it and reads nothing else.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable rusage.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
            return Err(std::io::Error::last_os_error()).context("getrusage(RUSAGE_THREAD)");
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Ok(seconds(usage.ru_utime) + seconds(usage.ru_stime))
    }

    fn join<T>(handle: JoinHandle<Result<T>>, name: &str) -> Result<T> {
        handle
            .join()
            .map_err(|_| anyhow!("the {name} thread panicked"))?
    }

    /// CPU seconds per GB (10^9 B).
    fn per_gb(cpu_s: f64, bytes: u64) -> f64 {
        cpu_s / (bytes as f64 / 1e9)
    }

    /// Writes `total_bytes` to `stream` in `block_bytes` writes, then shuts down the write side.
    /// Returns (bytes sent, this thread's CPU seconds).
    fn send_blocks(
        mut stream: TcpStream,
        total_bytes: u64,
        block_bytes: usize,
    ) -> Result<(u64, f64)> {
        let block = crate::common::random_bytes(block_bytes, 11);
        let cpu_before = thread_cpu_s()?;
        let mut sent = 0u64;
        while sent < total_bytes {
            let n = (total_bytes - sent).min(block_bytes as u64) as usize;
            stream.write_all(&block[..n])?;
            sent += n as u64;
        }
        stream.shutdown(Shutdown::Write)?;
        Ok((sent, thread_cpu_s()? - cpu_before))
    }

    /// Reads `stream` to its end into one reused buffer, discarding the bytes. Returns (bytes
    /// received, this thread's CPU seconds).
    fn discard(mut stream: TcpStream, block_bytes: usize) -> Result<(u64, f64)> {
        let mut buf = vec![0u8; block_bytes];
        let cpu_before = thread_cpu_s()?;
        let mut received = 0u64;
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok((received, thread_cpu_s()? - cpu_before));
            }
            received += n as u64;
        }
    }

    /// The kernel's cost of a broker's ingest path without the broker: a sender thread writes
    /// `--total-bytes` over one loopback connection; a receiver thread read()s into a reused
    /// `--block-bytes` buffer until it is full and write()s it to a file (buffered, no fsync).
    /// The receiver's CPU per GB is recv + page-cache write.
    pub fn ingest_ref(args: &IngestRefArgs) -> Result<()> {
        ensure!(
            args.block_bytes > 0 && args.total_bytes > 0,
            "--block-bytes and --total-bytes must be positive"
        );
        let path = args
            .dir
            .join(format!("ingest-ref-{}.tmp", std::process::id()));
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        // Connected here, before either thread starts, so that neither can wait forever for the
        // other: a sender that fails closes the socket and the receiver sees its end.
        let client = TcpStream::connect(listener.local_addr()?)?;
        let block_bytes = args.block_bytes;
        let started = Instant::now();
        let receiver = std::thread::spawn(move || -> Result<(u64, f64, u64)> {
            let (mut stream, _) = listener.accept()?;
            let mut buf = vec![0u8; block_bytes];
            let cpu_before = thread_cpu_s()?;
            let mut received = 0u64;
            let mut writes = 0u64;
            let mut end = false;
            while !end {
                let mut filled = 0;
                while filled < buf.len() {
                    let n = stream.read(&mut buf[filled..])?;
                    if n == 0 {
                        end = true;
                        break;
                    }
                    filled += n;
                }
                if filled > 0 {
                    file.write_all(&buf[..filled])?;
                    received += filled as u64;
                    writes += 1;
                }
            }
            Ok((received, thread_cpu_s()? - cpu_before, writes))
        });
        let total_bytes = args.total_bytes;
        let sender = std::thread::spawn(move || -> Result<(u64, f64)> {
            send_blocks(client, total_bytes, block_bytes)
        });
        let received = join(receiver, "receiver");
        let elapsed_s = started.elapsed().as_secs_f64();
        let sent = join(sender, "sender");
        std::fs::remove_file(&path)?;
        let (received, receiver_cpu_s, writes) = received?;
        let (sent, sender_cpu_s) = sent?;
        ensure!(received == sent, "sent {sent} B but received {received} B");
        let mb_per_s = received as f64 / 1e6 / elapsed_s;
        println!(
            "ingest-ref: {} MB over loopback, received in {} B blocks and written (buffered) to a file, in {elapsed_s:.2} s: {mb_per_s:.0} MB/s; receiver CPU {:.3} s per GB, sender CPU {:.3} s per GB",
            received / 1_000_000,
            args.block_bytes,
            per_gb(receiver_cpu_s, received),
            per_gb(sender_cpu_s, sent),
        );
        println!(
            "{}",
            json!({
                "mode": "ingest-ref",
                "total_bytes": received,
                "block_bytes": args.block_bytes,
                "file_writes": writes,
                "elapsed_s": elapsed_s,
                "mb_per_s": mb_per_s,
                "receiver_cpu_s": receiver_cpu_s,
                "receiver_cpu_s_per_gb": per_gb(receiver_cpu_s, received),
                "sender_cpu_s": sender_cpu_s,
                "sender_cpu_s_per_gb": per_gb(sender_cpu_s, sent),
            })
        );
        Ok(())
    }

    /// Writes `total_bytes` of pseudo-random data to `path`, then reads it back once so that all
    /// of it is in the page cache.
    fn cached_file(path: &Path, total_bytes: u64, block_bytes: usize) -> Result<File> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let block = crate::common::random_bytes(block_bytes, 13);
        let mut written = 0u64;
        while written < total_bytes {
            let n = (total_bytes - written).min(block_bytes as u64) as usize;
            file.write_all(&block[..n])?;
            written += n as u64;
        }
        let mut buf = vec![0u8; block_bytes];
        let mut offset = 0u64;
        while offset < total_bytes {
            let n = file.read_at(&mut buf, offset)?;
            ensure!(n > 0, "{} is shorter than written", path.display());
            offset += n as u64;
        }
        Ok(file)
    }

    /// The kernel's cost of a broker's catch-up read path without the broker: a sender thread
    /// sends a page-cached file over one loopback connection, by pread()+write() of
    /// `--block-bytes` blocks or by sendfile() a block at a time; a receiver thread reads and
    /// discards. The sender's CPU per GB is the floor of serving.
    pub fn serve_ref(args: &ServeRefArgs) -> Result<()> {
        ensure!(
            args.block_bytes > 0 && args.total_bytes > 0,
            "--block-bytes and --total-bytes must be positive"
        );
        let path = args
            .dir
            .join(format!("serve-ref-{}.tmp", std::process::id()));
        let file = cached_file(&path, args.total_bytes, args.block_bytes);
        let result = file.and_then(|file| serve(args, file));
        std::fs::remove_file(&path)?;
        let (received, elapsed_s, sender_cpu_s, receiver_cpu_s) = result?;
        let method = args
            .method
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        let mb_per_s = received as f64 / 1e6 / elapsed_s;
        println!(
            "serve-ref: {} MB page-cached file sent over loopback by {method} in {} B steps, in {elapsed_s:.2} s: {mb_per_s:.0} MB/s; sender CPU {:.3} s per GB, receiver CPU {:.3} s per GB",
            received / 1_000_000,
            args.block_bytes,
            per_gb(sender_cpu_s, received),
            per_gb(receiver_cpu_s, received),
        );
        println!(
            "{}",
            json!({
                "mode": "serve-ref",
                "method": method,
                "total_bytes": received,
                "block_bytes": args.block_bytes,
                "elapsed_s": elapsed_s,
                "mb_per_s": mb_per_s,
                "sender_cpu_s": sender_cpu_s,
                "sender_cpu_s_per_gb": per_gb(sender_cpu_s, received),
                "receiver_cpu_s": receiver_cpu_s,
                "receiver_cpu_s_per_gb": per_gb(receiver_cpu_s, received),
            })
        );
        Ok(())
    }

    /// Returns (bytes received, seconds, sender CPU s, receiver CPU s).
    fn serve(args: &ServeRefArgs, file: File) -> Result<(u64, f64, f64, f64)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        // Connected before either thread starts (see ingest_ref).
        let mut stream = TcpStream::connect(listener.local_addr()?)?;
        let block_bytes = args.block_bytes;
        let total_bytes = args.total_bytes;
        let method = args.method;
        let started = Instant::now();
        let receiver = std::thread::spawn(move || -> Result<(u64, f64)> {
            let (stream, _) = listener.accept()?;
            discard(stream, block_bytes)
        });
        let sender = std::thread::spawn(move || -> Result<f64> {
            let cpu_before = thread_cpu_s()?;
            match method {
                ServeMethod::Copy => {
                    let mut buf = vec![0u8; block_bytes];
                    let mut offset = 0u64;
                    while offset < total_bytes {
                        let want = (total_bytes - offset).min(block_bytes as u64) as usize;
                        let n = file.read_at(&mut buf[..want], offset)?;
                        ensure!(n > 0, "the served file ended early");
                        stream.write_all(&buf[..n])?;
                        offset += n as u64;
                    }
                }
                ServeMethod::Sendfile => {
                    let mut offset: libc::off_t = 0;
                    while (offset as u64) < total_bytes {
                        let want = (total_bytes - offset as u64).min(block_bytes as u64) as usize;
                        // SAFETY: both descriptors are open for the call; `offset` is a valid
                        // off_t that sendfile advances.
                        let n = unsafe {
                            libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, want)
                        };
                        if n < 0 {
                            let error = std::io::Error::last_os_error();
                            if error.kind() == std::io::ErrorKind::Interrupted {
                                continue;
                            }
                            return Err(error).context("sendfile");
                        }
                        ensure!(n > 0, "the served file ended early");
                    }
                }
            }
            stream.shutdown(Shutdown::Write)?;
            thread_cpu_s().map(|after| after - cpu_before)
        });
        let received = join(receiver, "receiver");
        let elapsed_s = started.elapsed().as_secs_f64();
        let sender_cpu_s = join(sender, "sender")?;
        let (received, receiver_cpu_s) = received?;
        ensure!(
            received == total_bytes,
            "sent {total_bytes} B but received {received} B"
        );
        Ok((received, elapsed_s, sender_cpu_s, receiver_cpu_s))
    }

    pub fn mem_ref(args: &MemRefArgs) -> Result<()> {
        let source = crate::common::random_bytes(args.buffer_bytes, 3);
        let mut target = vec![0u8; args.buffer_bytes];
        target.copy_from_slice(&source); // fault the pages in before timing
        let started = Instant::now();
        for round in 0..args.rounds {
            target.copy_from_slice(std::hint::black_box(&source));
            std::hint::black_box(&mut target)[round % args.buffer_bytes] ^= 1;
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        let copied = (args.buffer_bytes * args.rounds) as f64;
        let mb_per_s = copied / 1e6 / elapsed_s;
        println!(
            "mem-ref: {} x {} MB memcpy in {elapsed_s:.2} s: {mb_per_s:.0} MB/s",
            args.rounds,
            args.buffer_bytes / 1_000_000
        );
        println!(
            "{}",
            json!({
                "mode": "mem-ref",
                "buffer_bytes": args.buffer_bytes,
                "rounds": args.rounds,
                "elapsed_s": elapsed_s,
                "mb_per_s": mb_per_s,
            })
        );
        Ok(())
    }
}

/// Scale workloads: many partitions, start-up time, many idle connections.
mod scale {
    use std::time::{Duration, Instant};

    use anyhow::{bail, ensure, Result};
    use clap::Args;
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
    use kafka_protocol::messages::ApiKey;
    use serde_json::json;
    use tidelog_bench::{build_batch, error_code, topic_name, KafkaClient, NewRecord};

    use crate::common::rss_bytes;

    #[derive(Args)]
    pub struct PopulateArgs {
        #[arg(long, default_value = "127.0.0.1:9092")]
        pub bootstrap: String,
        /// Topics are named PREFIX-0 … PREFIX-(topics-1).
        #[arg(long, default_value = "scale")]
        pub prefix: String,
        #[arg(long, default_value_t = 100)]
        pub topics: usize,
        #[arg(long, default_value_t = 100)]
        pub partitions_per_topic: i32,
        /// Topics per CreateTopics request.
        #[arg(long, default_value_t = 10)]
        pub topics_per_request: usize,
        /// Value bytes of the one record produced to every partition.
        #[arg(long, default_value_t = 100)]
        pub message_bytes: usize,
        /// Broker process whose RSS is reported at the end.
        #[arg(long)]
        pub broker_pid: Option<u32>,
    }

    #[derive(Args)]
    pub struct WaitReadyArgs {
        #[arg(long, default_value = "127.0.0.1:9092")]
        pub bootstrap: String,
        /// Ready once Metadata lists at least this many partitions.
        #[arg(long, default_value_t = 0)]
        pub expect_partitions: usize,
        /// Then one acks=1 produce to partition 0 of this topic must succeed.
        #[arg(long)]
        pub probe_topic: Option<String>,
        #[arg(long, default_value_t = 120.0)]
        pub timeout_s: f64,
    }

    #[derive(Args)]
    pub struct IdleConnsArgs {
        #[arg(long, default_value = "127.0.0.1:9092")]
        pub bootstrap: String,
        #[arg(long, default_value_t = 10_000)]
        pub count: usize,
        /// Seconds to hold them open before sampling RSS again.
        #[arg(long, default_value_t = 2.0)]
        pub hold_s: f64,
        #[arg(long)]
        pub broker_pid: Option<u32>,
    }

    pub async fn populate(args: PopulateArgs) -> Result<()> {
        let mut admin = KafkaClient::connect(&args.bootstrap).await?;
        let version = admin.version_for(ApiKey::CreateTopics).await?;
        let started = Instant::now();
        let names: Vec<String> = (0..args.topics)
            .map(|t| format!("{}-{t}", args.prefix))
            .collect();
        for chunk in names.chunks(args.topics_per_request.max(1)) {
            let request = CreateTopicsRequest::default()
                .with_topics(
                    chunk
                        .iter()
                        .map(|name| {
                            CreatableTopic::default()
                                .with_name(topic_name(name))
                                .with_num_partitions(args.partitions_per_topic)
                                .with_replication_factor(1)
                        })
                        .collect(),
                )
                .with_timeout_ms(60_000);
            let response = admin.send(version, request).await?;
            for topic in &response.topics {
                if topic.error_code != error_code::NONE
                    && topic.error_code != error_code::TOPIC_ALREADY_EXISTS
                {
                    bail!(
                        "creating {}: error {} {:?}",
                        topic.name.as_str(),
                        topic.error_code,
                        topic.error_message
                    );
                }
            }
        }
        let create_s = started.elapsed().as_secs_f64();
        let batch = build_batch(
            &[NewRecord::value(crate::common::random_bytes(
                args.message_bytes,
                5,
            ))],
            0,
        );
        let produced_at = Instant::now();
        for name in &names {
            let entries: Vec<(&str, i32, bytes::Bytes)> = (0..args.partitions_per_topic)
                .map(|p| (name.as_str(), p, batch.clone()))
                .collect();
            let response = admin
                .produce_many(&entries, 1)
                .await?
                .expect("acks=1 has a response");
            for topic in &response.responses {
                for partition in &topic.partition_responses {
                    ensure!(
                        partition.error_code == error_code::NONE,
                        "produce to {}-{}: error {}",
                        topic.name.as_str(),
                        partition.index,
                        partition.error_code
                    );
                }
            }
        }
        let produce_s = produced_at.elapsed().as_secs_f64();
        let partitions = args.topics * args.partitions_per_topic as usize;
        let rss = args.broker_pid.map(rss_bytes).transpose()?;
        println!(
            "populate: {} topics x {} partitions created in {create_s:.2} s, one record produced to each in {produce_s:.2} s{}",
            args.topics,
            args.partitions_per_topic,
            rss.map_or(String::new(), |r| format!("; broker RSS {:.1} MB", r as f64 / 1e6))
        );
        println!(
            "{}",
            json!({
                "mode": "populate",
                "partitions": partitions,
                "create_s": create_s,
                "produce_s": produce_s,
                "broker_rss_bytes": rss,
            })
        );
        Ok(())
    }

    pub async fn wait_ready(args: WaitReadyArgs) -> Result<()> {
        let started = Instant::now();
        let give_up = started + Duration::from_secs_f64(args.timeout_s);
        let mut partitions_seen = 0;
        loop {
            ensure!(
                Instant::now() < give_up,
                "not ready after {} s ({partitions_seen} partitions seen)",
                args.timeout_s
            );
            let attempt = async {
                let mut client = KafkaClient::connect(&args.bootstrap).await?;
                let metadata = client.metadata(None).await?;
                let partitions: usize = metadata.topics.iter().map(|t| t.partitions.len()).sum();
                if partitions < args.expect_partitions {
                    return Ok::<_, anyhow::Error>((partitions, false));
                }
                if let Some(topic) = &args.probe_topic {
                    let batch = build_batch(&[NewRecord::value(&b"ready"[..])], 0);
                    let result = client.produce_acked(topic, 0, batch, 1).await?;
                    if result.error_code != error_code::NONE {
                        return Ok((partitions, false));
                    }
                }
                Ok((partitions, true))
            };
            match attempt.await {
                Ok((_, true)) => break,
                Ok((partitions, false)) => partitions_seen = partitions,
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ready_s = started.elapsed().as_secs_f64();
        println!("wait-ready: ready after {ready_s:.3} s");
        println!("{}", json!({ "mode": "wait-ready", "ready_s": ready_s }));
        Ok(())
    }

    pub async fn idle_conns(args: IdleConnsArgs) -> Result<()> {
        let rss_before = args.broker_pid.map(rss_bytes).transpose()?;
        let started = Instant::now();
        let mut clients = Vec::with_capacity(args.count);
        let mut remaining = args.count;
        while remaining > 0 {
            let wave = remaining.min(256);
            let tasks: Vec<_> = (0..wave)
                .map(|_| {
                    let bootstrap = args.bootstrap.clone();
                    tokio::spawn(async move {
                        let mut client = KafkaClient::connect(&bootstrap).await?;
                        client.api_versions().await?;
                        Ok::<_, anyhow::Error>(client)
                    })
                })
                .collect();
            for task in tasks {
                clients.push(task.await??);
            }
            remaining -= wave;
        }
        let open_s = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(args.hold_s)).await;
        let rss_after = args.broker_pid.map(rss_bytes).transpose()?;
        let per_connection = match (rss_before, rss_after) {
            (Some(b), Some(a)) => Some((a as f64 - b as f64) / args.count as f64),
            _ => None,
        };
        println!(
            "idle-conns: {} connections open in {open_s:.2} s{}",
            clients.len(),
            match (rss_before, rss_after, per_connection) {
                (Some(b), Some(a), Some(p)) => format!(
                    "; broker RSS {:.1} MB before, {:.1} MB with them open ({:.0} B per connection)",
                    b as f64 / 1e6,
                    a as f64 / 1e6,
                    p
                ),
                _ => String::new(),
            }
        );
        println!(
            "{}",
            json!({
                "mode": "idle-conns",
                "connections": clients.len(),
                "open_s": open_s,
                "broker_rss_before_bytes": rss_before,
                "broker_rss_after_bytes": rss_after,
                "rss_per_connection_bytes": per_connection,
            })
        );
        drop(clients);
        Ok(())
    }
}
