//! `tidelog-bench`: end-to-end produce/fetch throughput against a running broker, and
//! `disk-ref`, the reference it is compared with (sequential appends with fdatasync after each).
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
    build_batch, error_code, fetch_partition, list_offsets_timestamp, produce_partition,
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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::DiskRef(args)) => disk_ref(&args),
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(cli.run))
        }
    }
}

fn disk_ref(args: &DiskRefArgs) -> Result<()> {
    ensure!(args.block_bytes > 0, "--block-bytes must be positive");
    ensure!(
        args.files > 0 && args.threads > 0,
        "--files and --threads must be positive"
    );
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
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<&PathBuf> = paths.iter().skip(t).step_by(threads).collect();
                let block = &block;
                scope.spawn(move || -> Result<()> {
                    let mut files = mine
                        .iter()
                        .map(|path| {
                            std::fs::File::create(path)
                                .with_context(|| format!("creating {}", path.display()))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let count = files.len();
                    for i in 0..per_thread as usize {
                        let file = &mut files[i % count];
                        file.write_all(block)?;
                        file.sync_data()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a disk-ref thread panicked"))??;
        }
        Ok(())
    })?;
    let block_count = per_thread * threads as u64;
    let elapsed_s = started.elapsed().as_secs_f64();
    for path in &paths {
        std::fs::remove_file(path)?;
    }
    let bytes = block_count * args.block_bytes as u64;
    let mb_per_s = bytes as f64 / 1e6 / elapsed_s;
    let syncs_per_s = block_count as f64 / elapsed_s;
    println!(
        "disk-ref: {block_count} x {} B appends with fdatasync over {} file(s), {threads} thread(s): {mb_per_s:.1} MB/s, {syncs_per_s:.0} syncs/s",
        args.block_bytes, args.files
    );
    println!(
        "{}",
        json!({
            "mode": "disk-ref",
            "block_bytes": args.block_bytes,
            "files": args.files,
            "threads": threads,
            "total_bytes": bytes,
            "elapsed_s": elapsed_s,
            "mb_per_s": mb_per_s,
            "syncs_per_s": syncs_per_s,
        })
    );
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
    let result = admin
        .create_topic(&args.topic, args.partitions, &[])
        .await?;
    if result.error_code != error_code::NONE
        && result.error_code != error_code::TOPIC_ALREADY_EXISTS
    {
        bail!(
            "creating {}: error {} {:?}",
            args.topic,
            result.error_code,
            result.error_message
        );
    }
    let metadata = admin.metadata(Some(&[args.topic.as_str()])).await?;
    let topic = metadata
        .topics
        .first()
        .context("Metadata lacks the topic")?;
    ensure!(
        topic.error_code == error_code::NONE && topic.partitions.len() >= args.partitions as usize,
        "topic {} has error {} and {} partitions",
        args.topic,
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
            let data = fetch_partition(&response, &args.topic, *partition)?;
            ensure!(
                data.error_code == error_code::NONE,
                "fetch {}-{partition}: error {}",
                args.topic,
                data.error_code
            );
            let records = data.records.clone().unwrap_or_default();
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
