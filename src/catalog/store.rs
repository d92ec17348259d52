//! The metadata log on disk: `<data-dir>/__cluster_metadata/metadata.log`, one record per line
//! as `<crc32c, 8 hex digits> <JSON>`, appended and fdatasync'ed before a change is answered.
//! At start, lines are replayed up to the first torn or corrupt one, where the file is cut.
//!
//! `<data-dir>/meta.properties` holds the cluster id and node id, as Kafka's does.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{Catalog, MetadataRecord};

pub struct MetadataStore {
    path: PathBuf,
    file: File,
}

impl MetadataStore {
    /// Opens the store under `data_dir`, creating it on first start, and replays it.
    pub fn open(data_dir: &Path, node_id: i32) -> std::io::Result<(MetadataStore, Catalog)> {
        std::fs::create_dir_all(data_dir)?;
        let cluster_id = load_or_create_cluster_id(data_dir, node_id)?;
        let dir = data_dir.join("__cluster_metadata");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("metadata.log");
        let mut catalog = Catalog::new(cluster_id);
        let mut valid_len: u64 = 0;
        let mut total_len: u64 = 0;
        if path.exists() {
            let reader = BufReader::new(File::open(&path)?);
            for line in reader.split(b'\n') {
                let line = line?;
                total_len += line.len() as u64 + 1;
                match decode_line(&line) {
                    Some(record) => {
                        catalog.apply(&record);
                        valid_len = total_len;
                    }
                    None => break,
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let on_disk = file.metadata()?.len();
        if on_disk > valid_len {
            tracing::warn!(
                path = %path.display(),
                bytes = on_disk - valid_len,
                "metadata log has a torn or corrupt tail; truncating it"
            );
            file.set_len(valid_len)?;
            file.sync_data()?;
        }
        Ok((MetadataStore { path, file }, catalog))
    }

    /// Appends records and waits for them to be on disk. Blocking: call it off the shard's
    /// thread (`spawn_blocking`); it is the control plane, never the produce path.
    pub fn append(&mut self, records: &[MetadataRecord]) -> std::io::Result<()> {
        let mut text = Vec::new();
        for record in records {
            let json = serde_json::to_vec(record)?;
            write!(text, "{:08x} ", crc32c::crc32c(&json))?;
            text.extend_from_slice(&json);
            text.push(b'\n');
        }
        self.file.write_all(&text)?;
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn decode_line(line: &[u8]) -> Option<MetadataRecord> {
    let (crc_hex, json) = (line.get(..8)?, line.get(9..)?);
    let crc = u32::from_str_radix(std::str::from_utf8(crc_hex).ok()?, 16).ok()?;
    if crc != crc32c::crc32c(json) {
        return None;
    }
    serde_json::from_slice(json).ok()
}

fn load_or_create_cluster_id(data_dir: &Path, node_id: i32) -> std::io::Result<String> {
    let path = data_dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = text
            .lines()
            .find_map(|line| line.strip_prefix("cluster.id="))
        {
            return Ok(id.trim().to_string());
        }
    }
    let cluster_id = new_cluster_id();
    let text = format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
    let tmp = data_dir.join("meta.properties.tmp");
    std::fs::write(&tmp, text)?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(cluster_id)
}

/// Kafka's cluster ids are a UUID in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    base64_url(uuid::Uuid::new_v4().as_bytes())
}

/// URL-safe base64 without padding, as Kafka prints topic ids and cluster ids.
pub fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4();
        let cluster_id;
        {
            let (mut store, catalog) = MetadataStore::open(dir.path(), 1).unwrap();
            cluster_id = catalog.cluster_id.clone();
            store
                .append(&[MetadataRecord::CreateTopic {
                    name: "t".into(),
                    id,
                    partitions: 3,
                    configs: BTreeMap::new(),
                }])
                .unwrap();
            // A torn write: half a line.
            let mut file = OpenOptions::new().append(true).open(store.path()).unwrap();
            file.write_all(b"0000abcd {\"DeleteTo").unwrap();
        }
        let (_, catalog) = MetadataStore::open(dir.path(), 1).unwrap();
        assert_eq!(catalog.cluster_id, cluster_id);
        assert_eq!(catalog.topic("t").unwrap().id, id);
        assert_eq!(catalog.topic("t").unwrap().partition_count, 3);
    }

    #[test]
    fn base64_matches_kafka_length() {
        assert_eq!(base64_url(&[0u8; 16]).len(), 22);
        assert_eq!(base64_url(b"Man"), "TWFu");
    }
}
