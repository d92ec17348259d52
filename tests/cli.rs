//! The command line a user meets: --help, bad flags, environment variables, the TOML config file
//! and a clean exit on SIGTERM.

mod common;

use std::ffi::OsString;
use std::time::Duration;

use common::{broker_command, free_port, Broker, Deadline};
use tempfile::TempDir;

/// Runs `tidelog` with `args` to completion and returns (exit code, stdout, stderr).
fn run_to_exit(args: &[&str]) -> (Option<i32>, String, String) {
    let output = broker_command().args(args).output().expect("run tidelog");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts a usage error: exit code 2 and an `error` line naming `needle`, no panic.
fn assert_usage_error(code: Option<i32>, stderr: &str, needle: &str) {
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.to_lowercase().contains("error") && line.contains(needle)),
        "no one-line error naming {needle:?} in stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "panic on bad input:\n{stderr}"
    );
}

#[test]
fn help_documents_every_flag() {
    let (code, stdout, stderr) = run_to_exit(&["--help"]);
    assert_eq!(code, Some(0), "--help exit code; stderr:\n{stderr}");
    for flag in [
        "--listen",
        "--advertised",
        "--data-dir",
        "--shards",
        "--node-id",
        "--default-partitions",
        "--auto-create-topics",
        "--log-level",
        "--config",
    ] {
        assert!(
            stdout.contains(flag),
            "--help does not mention {flag}:\n{stdout}"
        );
    }
}

#[test]
fn non_numeric_shards_is_a_usage_error() {
    let data_dir = TempDir::new().unwrap();
    let (code, _, stderr) = run_to_exit(&[
        "--shards",
        "abc",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
    ]);
    assert_usage_error(code, &stderr, "--shards");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let (code, _, stderr) = run_to_exit(&["--bogus"]);
    assert_usage_error(code, &stderr, "--bogus");
}

#[tokio::test]
async fn listen_address_from_environment() {
    let port = free_port();
    let data_dir = TempDir::new().unwrap();
    let mut command = broker_command();
    command.env("TIDELOG_LISTEN", format!("127.0.0.1:{port}"));
    let args: Vec<OsString> = vec!["--data-dir".into(), data_dir.path().into()];
    let broker = Broker::spawn(command, &args, port, Some(data_dir));
    let mut client = broker.client().await;
    let versions = client.api_versions().await.expect("ApiVersions answer");
    assert_eq!(versions.error_code, 0);
    broker.stop();
}

#[tokio::test]
async fn toml_config_file_is_honoured() {
    let port = free_port();
    let data_dir = TempDir::new().unwrap();
    let config_dir = TempDir::new().unwrap();
    let config_path = config_dir.path().join("tidelog.toml");
    // The advertised host differs from the listen host so Metadata shows which one is used.
    std::fs::write(
        &config_path,
        format!(
            "listen = \"127.0.0.1:{port}\"\n\
             advertised = \"localhost:{port}\"\n\
             data_dir = {data_dir:?}\n\
             shards = 1\n\
             node_id = 7\n\
             default_partitions = 3\n\
             auto_create_topics = true\n\
             log_level = \"info\"\n",
            data_dir = data_dir.path().to_str().unwrap()
        ),
    )
    .unwrap();
    let args: Vec<OsString> = vec!["--config".into(), config_path.clone().into()];
    let broker = Broker::spawn(broker_command(), &args, port, None);
    let mut client = broker.client().await;

    let metadata = client.metadata(None).await.expect("Metadata answer");
    assert_eq!(
        metadata.brokers.len(),
        1,
        "one broker: {:?}",
        metadata.brokers
    );
    let node = &metadata.brokers[0];
    assert_eq!(node.node_id.0, 7, "node_id from the config file");
    assert_eq!(
        node.host.as_str(),
        "localhost",
        "advertised host from the config file"
    );
    assert_eq!(
        node.port,
        i32::from(port),
        "advertised port from the config file"
    );

    // auto_create_topics = true with default_partitions = 3: Metadata creates the topic.
    // Kafka may answer LEADER_NOT_AVAILABLE while the new topic settles, so poll.
    let deadline = Deadline::new(Duration::from_secs(10), "auto-created topic");
    let partitions = loop {
        let metadata = client
            .metadata_with(Some(&["auto-created"]), true)
            .await
            .expect("Metadata answer");
        match metadata.topics.first() {
            Some(topic) if topic.error_code == 0 => break topic.partitions.len(),
            _ => deadline.tick().await,
        }
    };
    assert_eq!(partitions, 3, "default_partitions from the config file");

    // data_dir from the config file receives the topic's data.
    let batch =
        tidelog_bench::build_batch(&[tidelog_bench::NewRecord::value("x")], common::now_ms());
    let produced = client
        .produce_acked("auto-created", 0, batch, -1)
        .await
        .expect("Produce answer");
    assert_eq!(produced.error_code, 0);
    assert!(
        dir_has_files(data_dir.path()),
        "data_dir {} is empty after an acknowledged produce",
        data_dir.path().display()
    );
    broker.stop();
}

fn dir_has_files(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let entry = entry.unwrap();
        let file_type = entry.file_type().unwrap();
        file_type.is_file() || (file_type.is_dir() && dir_has_files(&entry.path()))
    })
}

#[test]
fn bad_value_in_toml_config_is_a_usage_error() {
    let config_dir = TempDir::new().unwrap();
    let config_path = config_dir.path().join("tidelog.toml");
    std::fs::write(
        &config_path,
        format!(
            "listen = \"127.0.0.1:{}\"\ndata_dir = {:?}\nshards = \"x\"\n",
            free_port(),
            config_dir.path().join("data").to_str().unwrap()
        ),
    )
    .unwrap();
    let (code, _, stderr) = run_to_exit(&["--config", config_path.to_str().unwrap()]);
    assert_usage_error(code, &stderr, "shards");
}

#[test]
fn sigterm_exits_zero() {
    let broker = Broker::start(1);
    broker.stop();
}
