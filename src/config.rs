//! Broker configuration: command-line flags, `TIDELOG_<FLAG>` environment variables and an
//! optional TOML file (`--config`), merged in that order of precedence over built-in defaults.
//!
//! Every value is validated here, so that a bad one ends the process with a one-line error
//! naming it (exit code 2) before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// Tidelog: a Kafka-compatible message broker.
#[derive(Debug, Parser)]
#[command(name = "tidelog", version, about, long_about = None)]
pub struct Cli {
    /// TOML file with any of the settings below (keys as the flags, with `_` for `-`:
    /// `listen`, `data_dir`, ...). Flags and environment variables override it.
    #[arg(long, env = "TIDELOG_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address to accept Kafka clients on [default: 127.0.0.1:9092]
    #[arg(long, env = "TIDELOG_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// Address given to clients in Metadata [default: the listen address]
    #[arg(long, env = "TIDELOG_ADVERTISED", value_name = "HOST:PORT")]
    pub advertised: Option<String>,

    /// Directory holding the topics' logs and the metadata log [default: ./data]
    #[arg(long, env = "TIDELOG_DATA_DIR", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,

    /// Number of shards, each a thread pinned to a core [default: the number of cores]
    #[arg(long, env = "TIDELOG_SHARDS", value_name = "N")]
    pub shards: Option<usize>,

    /// This broker's node id [default: 1]
    #[arg(long, env = "TIDELOG_NODE_ID", value_name = "N")]
    pub node_id: Option<i32>,

    /// Partitions of a topic created without a partition count, or automatically [default: 1]
    #[arg(long, env = "TIDELOG_DEFAULT_PARTITIONS", value_name = "N")]
    pub default_partitions: Option<i32>,

    /// Create unknown topics when a client asks for them in Metadata [default: true]
    #[arg(long, env = "TIDELOG_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    pub auto_create_topics: Option<bool>,

    /// Log filter: error, warn, info, debug, trace, or a tracing filter [default: info]
    #[arg(long, env = "TIDELOG_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Largest request frame accepted, in bytes (`socket.request.max.bytes`) [default: 104857600]
    #[arg(long, env = "TIDELOG_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub max_request_bytes: Option<u32>,

    /// I/O engine for log segments: auto, uring or portable [default: auto]
    #[arg(long, env = "TIDELOG_IO_ENGINE", value_name = "ENGINE")]
    pub io_engine: Option<String>,

    /// Send page-cached record data of fetches with sendfile (false: copy it through memory)
    /// [default: true]
    #[arg(long, env = "TIDELOG_FETCH_SENDFILE", value_name = "BOOL")]
    pub fetch_sendfile: Option<bool>,

    /// When appends are forced to disk: always (acks=all waits for an fdatasync covering
    /// it), interval:<ms> (in the background), or never (left to the kernel); a topic's
    /// flush.ms overrides it [default: always]
    #[arg(long, env = "TIDELOG_FSYNC", value_name = "POLICY")]
    pub fsync: Option<String>,

    /// Wait this long for more members after the first joins an empty classic group (`group.initial.rebalance.delay.ms`) [default: 3000]
    #[arg(
        long,
        env = "TIDELOG_GROUP_INITIAL_REBALANCE_DELAY_MS",
        value_name = "MS"
    )]
    pub group_initial_rebalance_delay_ms: Option<u32>,

    /// Smallest session timeout a classic group member may ask for (`group.min.session.timeout.ms`) [default: 6000]
    #[arg(long, env = "TIDELOG_GROUP_MIN_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub group_min_session_timeout_ms: Option<u32>,

    /// Largest session timeout a classic group member may ask for (`group.max.session.timeout.ms`) [default: 1800000]
    #[arg(long, env = "TIDELOG_GROUP_MAX_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub group_max_session_timeout_ms: Option<u32>,

    /// Most members of one consumer group (`group.max.size`) [default: 2147483647]
    #[arg(long, env = "TIDELOG_GROUP_MAX_SIZE", value_name = "N")]
    pub group_max_size: Option<u32>,

    /// Partitions of __consumer_offsets, fixed when it is first created (`offsets.topic.num.partitions`) [default: 50]
    #[arg(long, env = "TIDELOG_OFFSETS_TOPIC_PARTITIONS", value_name = "N")]
    pub offsets_topic_partitions: Option<i32>,

    /// Committed offsets of an empty group are kept this long (`offsets.retention.minutes`) [default: 10080]
    #[arg(long, env = "TIDELOG_OFFSETS_RETENTION_MINUTES", value_name = "MIN")]
    pub offsets_retention_minutes: Option<u32>,

    /// Heartbeat interval given to KIP-848 consumers (`group.consumer.heartbeat.interval.ms`) [default: 5000]
    #[arg(
        long,
        env = "TIDELOG_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        value_name = "MS"
    )]
    pub group_consumer_heartbeat_interval_ms: Option<u32>,

    /// Session timeout of KIP-848 consumers (`group.consumer.session.timeout.ms`) [default: 45000]
    #[arg(
        long,
        env = "TIDELOG_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        value_name = "MS"
    )]
    pub group_consumer_session_timeout_ms: Option<u32>,

    /// Object store for tiered segments: file:///path or s3://bucket/prefix [default: file://<data-dir>/tiered]
    #[arg(long, env = "TIDELOG_TIER_URL", value_name = "URL")]
    pub tier_url: Option<String>,

    /// S3-compatible endpoint, e.g. http://127.0.0.1:9000 (path-style addressing) [default: AWS]
    #[arg(long, env = "TIDELOG_TIER_ENDPOINT", value_name = "URL")]
    pub tier_endpoint: Option<String>,

    /// S3 region [default: AWS_REGION, else us-east-1]
    #[arg(long, env = "TIDELOG_TIER_REGION", value_name = "REGION")]
    pub tier_region: Option<String>,

    /// S3 access key id [default: AWS_ACCESS_KEY_ID]
    #[arg(long, env = "TIDELOG_TIER_ACCESS_KEY_ID", value_name = "KEY")]
    pub tier_access_key_id: Option<String>,

    /// S3 secret access key [default: AWS_SECRET_ACCESS_KEY]
    #[arg(long, env = "TIDELOG_TIER_SECRET_ACCESS_KEY", value_name = "SECRET")]
    pub tier_secret_access_key: Option<String>,

    /// Allow plain HTTP to the endpoint [default: true for an http:// endpoint]
    #[arg(long, env = "TIDELOG_TIER_ALLOW_HTTP", value_name = "BOOL")]
    pub tier_allow_http: Option<bool>,

    /// Bytes of remote segment data cached for reads, over all shards [default: 268435456]
    #[arg(long, env = "TIDELOG_TIER_CACHE_BYTES", value_name = "BYTES")]
    pub tier_cache_bytes: Option<u64>,

    /// How often each shard looks for sealed segments to upload [default: 1000]
    #[arg(long, env = "TIDELOG_TIER_UPLOAD_INTERVAL_MS", value_name = "MS")]
    pub tier_upload_interval_ms: Option<u64>,

    /// Segments each shard uploads at once [default: 2]
    #[arg(long, env = "TIDELOG_TIER_UPLOAD_CONCURRENCY", value_name = "N")]
    pub tier_upload_concurrency: Option<usize>,

    /// Upload bandwidth limit over all shards, bytes per second; 0 for none [default: 0]
    #[arg(long, env = "TIDELOG_TIER_UPLOAD_BYTES_PER_SEC", value_name = "BYTES")]
    pub tier_upload_bytes_per_sec: Option<u64>,

    /// Default of the topic config remote.storage.enable [default: false]
    #[arg(long, env = "TIDELOG_REMOTE_STORAGE_ENABLE", value_name = "BOOL")]
    pub remote_storage_enable: Option<bool>,
}

/// The TOML file's shape: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    advertised: Option<String>,
    data_dir: Option<PathBuf>,
    shards: Option<usize>,
    node_id: Option<i32>,
    default_partitions: Option<i32>,
    auto_create_topics: Option<bool>,
    log_level: Option<String>,
    max_request_bytes: Option<u32>,
    io_engine: Option<String>,
    fetch_sendfile: Option<bool>,
    fsync: Option<String>,
    group_initial_rebalance_delay_ms: Option<u32>,
    group_min_session_timeout_ms: Option<u32>,
    group_max_session_timeout_ms: Option<u32>,
    group_max_size: Option<u32>,
    offsets_topic_partitions: Option<i32>,
    offsets_retention_minutes: Option<u32>,
    group_consumer_heartbeat_interval_ms: Option<u32>,
    group_consumer_session_timeout_ms: Option<u32>,
    tier_url: Option<String>,
    tier_endpoint: Option<String>,
    tier_region: Option<String>,
    tier_access_key_id: Option<String>,
    tier_secret_access_key: Option<String>,
    tier_allow_http: Option<bool>,
    tier_cache_bytes: Option<u64>,
    tier_upload_interval_ms: Option<u64>,
    tier_upload_concurrency: Option<usize>,
    remote_storage_enable: Option<bool>,
    tier_upload_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoEngineChoice {
    Auto,
    Uring,
    Portable,
}

/// The validated configuration the broker runs with.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub data_dir: PathBuf,
    pub shard_count: usize,
    pub node_id: i32,
    pub default_partitions: i32,
    pub auto_create_topics: bool,
    pub log_level: String,
    pub max_request_bytes: u32,
    pub io_engine: IoEngineChoice,
    /// Fetches send page-cached record bytes with `sendfile` (see `handlers::fetch`).
    pub fetch_sendfile: bool,
    /// `--fsync`: the default fsync policy of every partition log.
    pub fsync: tidelog_storage::FsyncPolicy,
    /// Requests of one connection being handled at once before reading pauses.
    pub max_inflight_requests_per_connection: usize,
    /// `max.incremental.fetch.session.cache.slots`, per shard.
    pub fetch_session_cache_slots: usize,
    /// Consumer-group coordinator settings.
    pub groups: GroupConfig,
    /// Tiered storage settings.
    pub tier: TierSettings,
}

/// Tiered storage: where sealed segments go and how uploads and remote reads behave.
#[derive(Debug, Clone)]
pub struct TierSettings {
    pub store: tidelog_tiering::TierConfig,
    pub cache_bytes: u64,
    pub upload_interval_ms: u64,
    pub upload_concurrency: usize,
    /// Upload bandwidth over all shards (0: unlimited).
    pub upload_bytes_per_sec: u64,
    /// `--remote-storage-enable`: the default of the topic config `remote.storage.enable`.
    pub remote_storage_default: bool,
}

/// The consumer-group settings (Kafka's `group.*` and `offsets.*` broker configs).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub max_size: u32,
    pub offsets_topic_partitions: i32,
    pub offsets_retention_minutes: u32,
    pub consumer_heartbeat_interval_ms: u32,
    pub consumer_session_timeout_ms: u32,
}

/// A setting with a bad value: the message names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

fn bad(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_string(),
        reason: reason.into(),
    }
}

impl BrokerConfig {
    /// Merges flags/environment (already in `cli`) over the file over the defaults.
    pub fn from_cli(cli: Cli) -> Result<BrokerConfig, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("--config", format!("{}: {e}", path.display())))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    let detail = e.message().replace('\n', " ");
                    match e.span().and_then(|span| key_at(&text, span.start)) {
                        Some(key) => bad(&key, format!("{detail} (in {})", path.display())),
                        None => bad("--config", format!("{}: {detail}", path.display())),
                    }
                })?
            }
            None => FileConfig::default(),
        };

        let listen_text = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:9092".to_string());
        let listen = resolve_addr(&listen_text).map_err(|reason| bad("--listen", reason))?;

        let (advertised_host, advertised_port) = match cli.advertised.or(file.advertised) {
            Some(text) => split_host_port(&text).map_err(|reason| bad("--advertised", reason))?,
            None => {
                let (host, port) = split_host_port(&listen_text).map_err(|r| bad("--listen", r))?;
                // Clients cannot connect to a wildcard address: advertise loopback instead.
                let host = if host == "0.0.0.0" || host == "::" || host == "[::]" {
                    "127.0.0.1".to_string()
                } else {
                    host
                };
                (host, port)
            }
        };

        let shard_count = match cli.shards.or(file.shards) {
            Some(0) => return Err(bad("--shards", "must be at least 1")),
            Some(n) if n > 1024 => return Err(bad("--shards", "must be at most 1024")),
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };

        let node_id = cli.node_id.or(file.node_id).unwrap_or(1);
        if node_id < 0 {
            return Err(bad("--node-id", "must not be negative"));
        }
        let default_partitions = cli
            .default_partitions
            .or(file.default_partitions)
            .unwrap_or(1);
        if !(1..=100_000).contains(&default_partitions) {
            return Err(bad("--default-partitions", "must be between 1 and 100000"));
        }
        let max_request_bytes = cli
            .max_request_bytes
            .or(file.max_request_bytes)
            .unwrap_or(100 * 1024 * 1024);
        if max_request_bytes < 1024 {
            return Err(bad("--max-request-bytes", "must be at least 1024"));
        }
        let log_level = cli
            .log_level
            .or(file.log_level)
            .unwrap_or_else(|| "info".to_string());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(bad(
                "--log-level",
                format!("'{log_level}' is not a log filter"),
            ));
        }
        let io_engine = match cli
            .io_engine
            .or(file.io_engine)
            .as_deref()
            .unwrap_or("auto")
        {
            "auto" => IoEngineChoice::Auto,
            "uring" | "io_uring" => IoEngineChoice::Uring,
            "portable" => IoEngineChoice::Portable,
            other => {
                return Err(bad(
                    "--io-engine",
                    format!("'{other}' is not one of auto, uring, portable"),
                ))
            }
        };

        let fsync_text = cli.fsync.or(file.fsync).unwrap_or_else(|| "always".into());
        let fsync = parse_fsync(&fsync_text).map_err(|reason| bad("--fsync", reason))?;

        let groups = GroupConfig {
            initial_rebalance_delay_ms: cli
                .group_initial_rebalance_delay_ms
                .or(file.group_initial_rebalance_delay_ms)
                .unwrap_or(3000),
            min_session_timeout_ms: cli
                .group_min_session_timeout_ms
                .or(file.group_min_session_timeout_ms)
                .unwrap_or(6000),
            max_session_timeout_ms: cli
                .group_max_session_timeout_ms
                .or(file.group_max_session_timeout_ms)
                .unwrap_or(1_800_000),
            max_size: cli
                .group_max_size
                .or(file.group_max_size)
                .unwrap_or(i32::MAX as u32),
            offsets_topic_partitions: cli
                .offsets_topic_partitions
                .or(file.offsets_topic_partitions)
                .unwrap_or(50),
            offsets_retention_minutes: cli
                .offsets_retention_minutes
                .or(file.offsets_retention_minutes)
                .unwrap_or(7 * 24 * 60),
            consumer_heartbeat_interval_ms: cli
                .group_consumer_heartbeat_interval_ms
                .or(file.group_consumer_heartbeat_interval_ms)
                .unwrap_or(5000),
            consumer_session_timeout_ms: cli
                .group_consumer_session_timeout_ms
                .or(file.group_consumer_session_timeout_ms)
                .unwrap_or(45_000),
        };
        if groups.min_session_timeout_ms > groups.max_session_timeout_ms {
            return Err(bad(
                "--group-min-session-timeout-ms",
                "must not exceed --group-max-session-timeout-ms",
            ));
        }
        if groups.max_size == 0 {
            return Err(bad("--group-max-size", "must be at least 1"));
        }
        if !(1..=10_000).contains(&groups.offsets_topic_partitions) {
            return Err(bad(
                "--offsets-topic-partitions",
                "must be between 1 and 10000",
            ));
        }
        if groups.offsets_retention_minutes == 0 {
            return Err(bad("--offsets-retention-minutes", "must be at least 1"));
        }
        if groups.consumer_heartbeat_interval_ms == 0
            || groups.consumer_heartbeat_interval_ms >= groups.consumer_session_timeout_ms
        {
            return Err(bad(
                "--group-consumer-heartbeat-interval-ms",
                "must be at least 1 and below --group-consumer-session-timeout-ms",
            ));
        }

        let data_dir = cli
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("data"));
        let tier_url = cli.tier_url.or(file.tier_url).unwrap_or_else(|| {
            let absolute = std::path::absolute(&data_dir).unwrap_or_else(|_| data_dir.clone());
            format!("file://{}", absolute.join("tiered").display())
        });
        if !(tier_url.starts_with("file://") || tier_url.starts_with("s3://")) {
            return Err(bad(
                "--tier-url",
                format!("'{tier_url}' is neither file:///path nor s3://bucket/prefix"),
            ));
        }
        let tier_endpoint = cli.tier_endpoint.or(file.tier_endpoint);
        let tier_allow_http = cli
            .tier_allow_http
            .or(file.tier_allow_http)
            .unwrap_or_else(|| {
                tier_endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://"))
            });
        let tier = TierSettings {
            store: tidelog_tiering::TierConfig {
                url: tier_url,
                endpoint: tier_endpoint,
                region: cli.tier_region.or(file.tier_region),
                access_key_id: cli.tier_access_key_id.or(file.tier_access_key_id),
                secret_access_key: cli.tier_secret_access_key.or(file.tier_secret_access_key),
                allow_http: tier_allow_http,
            },
            cache_bytes: cli
                .tier_cache_bytes
                .or(file.tier_cache_bytes)
                .unwrap_or(256 * 1024 * 1024),
            upload_interval_ms: cli
                .tier_upload_interval_ms
                .or(file.tier_upload_interval_ms)
                .unwrap_or(1000)
                .max(10),
            upload_concurrency: cli
                .tier_upload_concurrency
                .or(file.tier_upload_concurrency)
                .unwrap_or(2)
                .max(1),
            upload_bytes_per_sec: cli
                .tier_upload_bytes_per_sec
                .or(file.tier_upload_bytes_per_sec)
                .unwrap_or(0),
            remote_storage_default: cli
                .remote_storage_enable
                .or(file.remote_storage_enable)
                .unwrap_or(false),
        };

        Ok(BrokerConfig {
            listen,
            advertised_host,
            advertised_port,
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("data")),
            shard_count,
            node_id,
            default_partitions,
            auto_create_topics: cli
                .auto_create_topics
                .or(file.auto_create_topics)
                .unwrap_or(true),
            log_level,
            max_request_bytes,
            io_engine,
            fetch_sendfile: cli.fetch_sendfile.or(file.fetch_sendfile).unwrap_or(true),
            fsync,
            max_inflight_requests_per_connection: 256,
            fetch_session_cache_slots: 1000,
            groups,
            tier,
        })
    }
}

/// `always`, `interval:<ms>` (at least 1) or `never`.
fn parse_fsync(text: &str) -> Result<tidelog_storage::FsyncPolicy, String> {
    use tidelog_storage::FsyncPolicy;
    match text {
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        _ => match text.strip_prefix("interval:").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms >= 1 => Ok(FsyncPolicy::IntervalMs(ms)),
            _ => Err(format!(
                "'{text}' is not one of always, interval:<ms> (ms >= 1), never"
            )),
        },
    }
}

/// The `key` of the `key = value` line holding byte `position` of a TOML text, to name the
/// setting in an error.
fn key_at(text: &str, position: usize) -> Option<String> {
    let start = text.get(..position)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty()).then(|| key.to_string())
}

fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("'{text}' is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port number"))?;
    if host.is_empty() {
        return Err(format!("'{text}' has no host"));
    }
    Ok((host.to_string(), port))
}

fn resolve_addr(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    split_host_port(text)?;
    text.to_socket_addrs()
        .map_err(|e| format!("'{text}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BrokerConfig, ConfigError> {
        let mut full = vec!["tidelog"];
        full.extend_from_slice(args);
        BrokerConfig::from_cli(Cli::try_parse_from(full).expect("flags parse"))
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(config.data_dir, PathBuf::from("data"));
        assert_eq!(config.default_partitions, 1);
        assert!(config.auto_create_topics);
        assert_eq!(config.advertised_port, 9092);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = parse(&["--shards", "0"]).unwrap_err();
        assert_eq!(err.name, "--shards");
        let err = parse(&["--listen", "nonsense"]).unwrap_err();
        assert_eq!(err.name, "--listen");
        let err = parse(&["--io-engine", "fast"]).unwrap_err();
        assert_eq!(err.name, "--io-engine");
        let err = parse(&["--fsync", "sometimes"]).unwrap_err();
        assert_eq!(err.name, "--fsync");
        let err = parse(&["--fsync", "interval:0"]).unwrap_err();
        assert_eq!(err.name, "--fsync");
    }

    #[test]
    fn fsync_policies_parse() {
        use tidelog_storage::FsyncPolicy;
        assert_eq!(parse(&[]).unwrap().fsync, FsyncPolicy::Always);
        assert_eq!(
            parse(&["--fsync", "interval:50"]).unwrap().fsync,
            FsyncPolicy::IntervalMs(50)
        );
        assert_eq!(
            parse(&["--fsync", "never"]).unwrap().fsync,
            FsyncPolicy::Never
        );
    }

    #[test]
    fn a_bad_value_in_the_file_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tidelog.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\nshards = \"x\"\n").unwrap();
        let err = parse(&["--config", path.to_str().unwrap()]).unwrap_err();
        assert_eq!(err.name, "shards");
    }

    #[test]
    fn wildcard_listen_advertises_loopback() {
        let config = parse(&["--listen", "0.0.0.0:19092"]).unwrap();
        assert_eq!(config.advertised_host, "127.0.0.1");
        assert_eq!(config.advertised_port, 19092);
    }
}
