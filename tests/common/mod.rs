//! Starts and stops a real `tidelog` process for the integration tests.
//!
//! Each broker gets a free port, a fresh data directory (or a given one, for restarts) and a log
//! file; the log's tail is printed when a test fails while the broker is alive.

#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tidelog_bench::KafkaClient;

pub const BROKER_BIN: &str = env!("CARGO_BIN_EXE_tidelog");
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Every environment variable the broker reads, removed so the caller's shell cannot leak in.
const BROKER_ENV: &[&str] = &[
    "TIDELOG_CONFIG",
    "TIDELOG_LISTEN",
    "TIDELOG_ADVERTISED",
    "TIDELOG_DATA_DIR",
    "TIDELOG_SHARDS",
    "TIDELOG_NODE_ID",
    "TIDELOG_DEFAULT_PARTITIONS",
    "TIDELOG_AUTO_CREATE_TOPICS",
    "TIDELOG_LOG_LEVEL",
    "TIDELOG_MAX_REQUEST_BYTES",
    "TIDELOG_IO_ENGINE",
];

/// A port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A `tidelog` command with a clean environment.
pub fn broker_command() -> Command {
    let mut command = Command::new(BROKER_BIN);
    for name in BROKER_ENV {
        command.env_remove(name);
    }
    command
}

/// A running broker; killed (SIGKILL) on drop unless stopped.
pub struct Broker {
    child: Option<Child>,
    pub addr: String,
    pub port: u16,
    data_dir: Option<TempDir>,
    log_dir: TempDir,
}

impl Broker {
    /// Starts a broker with `shards` shards on a fresh data directory.
    pub fn start(shards: usize) -> Self {
        Self::start_in(TempDir::new().expect("data tempdir"), shards, &[])
    }

    /// Starts a broker on `data_dir` with extra flags.
    pub fn start_in(data_dir: TempDir, shards: usize, extra_args: &[&str]) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            addr.clone().into(),
            "--advertised".into(),
            addr.clone().into(),
            "--data-dir".into(),
            data_dir.path().into(),
            "--shards".into(),
            shards.to_string().into(),
        ];
        args.extend(extra_args.iter().map(OsString::from));
        Self::spawn(broker_command(), &args, port, Some(data_dir))
    }

    /// Spawns `command` with `args` and waits until `port` accepts TCP connections.
    pub fn spawn(
        mut command: Command,
        args: &[OsString],
        port: u16,
        data_dir: Option<TempDir>,
    ) -> Self {
        let log_dir = TempDir::new().expect("log tempdir");
        let log_path = log_dir.path().join("broker.log");
        let log = std::fs::File::create(&log_path).expect("create broker log");
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn tidelog");
        let mut broker = Broker {
            child: Some(child),
            addr: format!("127.0.0.1:{port}"),
            port,
            data_dir,
            log_dir,
        };
        broker.wait_accepting();
        broker
    }

    fn wait_accepting(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let socket_addr: SocketAddr = self.addr.parse().expect("socket addr");
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                panic!(
                    "tidelog exited with {status} before accepting on {}; log:\n{}",
                    self.addr,
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&socket_addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tidelog did not accept on {} within {STARTUP_TIMEOUT:?}; log:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("broker is running")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("broker is running").id() as i32
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir
            .as_ref()
            .expect("broker owns a data dir")
            .path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("broker.log")
    }

    /// Everything the broker wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub async fn client(&self) -> KafkaClient {
        KafkaClient::connect(&self.addr)
            .await
            .expect("connect to broker")
    }

    /// Sends SIGTERM and returns the exit status, panicking if it takes over 10 s.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid();
        // SAFETY: kill(2) on a child we spawned and have not yet reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                let log = self.log();
                let _ = self.child_mut().kill();
                let _ = self.child_mut().wait();
                self.child = None;
                panic!("tidelog did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and assert exit code 0 within 10 s.
    pub fn stop(mut self) {
        self.stop_in_place();
    }

    /// Like [`Broker::stop`], handing back the data directory for a restart.
    pub fn stop_and_keep_data(mut self) -> TempDir {
        self.stop_in_place();
        self.data_dir.take().expect("broker owns a data dir")
    }

    /// SIGKILL (no clean shutdown), handing back the data directory for a restart.
    #[allow(dead_code)]
    pub fn kill_and_keep_data(mut self) -> TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.data_dir.take().expect("broker owns a data dir")
    }

    fn stop_in_place(&mut self) {
        let status = self.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "tidelog exited with {status} after SIGTERM; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                let log = self.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- tidelog log tail ({}) ---", self.addr);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A polling deadline: call [`Deadline::tick`] between attempts; it panics naming `what` once
/// `timeout` has passed.
pub struct Deadline {
    at: Instant,
    timeout: Duration,
    what: &'static str,
}

impl Deadline {
    pub fn new(timeout: Duration, what: &'static str) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
            what,
        }
    }

    pub async fn tick(&self) {
        assert!(
            Instant::now() < self.at,
            "timed out after {:?} waiting for {}",
            self.timeout,
            self.what
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh connection gets a valid ApiVersions and Metadata answer.
pub async fn assert_broker_healthy(broker: &Broker) {
    let mut client = broker.client().await;
    let versions = client.api_versions().await.expect("ApiVersions answer");
    assert_eq!(versions.error_code, 0, "ApiVersions error code");
    assert!(
        versions.api_keys.iter().any(|k| k.api_key == 3),
        "ApiVersions lists Metadata"
    );
    let metadata = client.metadata(None).await.expect("Metadata answer");
    assert!(!metadata.brokers.is_empty(), "Metadata lists a broker");
}

/// Creates a topic and asserts success.
pub async fn create_topic(client: &mut KafkaClient, name: &str, partitions: i32) {
    let result = client
        .create_topic(name, partitions, &[])
        .await
        .expect("CreateTopics answer");
    assert_eq!(
        result.error_code, 0,
        "CreateTopics {name}: {:?}",
        result.error_message
    );
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
