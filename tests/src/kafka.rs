//! A real Apache Kafka broker (KRaft, one node that is broker and controller) run from
//! the jars scripts/tools.sh copies from Maven Central into the tool cache: formatted
//! with `kafka.tools.StorageTool`, started as `java -cp 'libs/*' kafka.Kafka`, stopped
//! and restarted by PID on the same ports and data directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use tempfile::TempDir;

use crate::process::{Process, free_port, wait_while_running};

/// The directory of the broker's jars: `BOXOFFICE_KAFKA_LIBS`, or `kafka-libs` in the
/// test toolchain's bin directory.
pub fn kafka_libs() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("BOXOFFICE_KAFKA_LIBS") {
        return Ok(PathBuf::from(dir));
    }
    let dir = crate::tools::tools_bin()?.join("kafka-libs");
    let has_broker = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
        })
        .unwrap_or(false);
    if !has_broker {
        bail!("{} has no Kafka jars; run scripts/tools.sh", dir.display());
    }
    Ok(dir)
}

pub struct KafkaServer {
    process: Option<Process>,
    libs: PathBuf,
    config: PathBuf,
    port: u16,
    dir: TempDir,
}

impl KafkaServer {
    /// Formats a fresh data directory and starts the broker; returns once it accepts
    /// connections.
    pub async fn start() -> Result<Self> {
        let libs = kafka_libs()?;
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-kafka-")
            .tempdir()?;
        crate::process::remove_dir_on_exit(dir.path());
        let port = free_port()?;
        let controller = free_port()?;
        let data = dir.path().join("data");
        let config = dir.path().join("server.properties");
        std::fs::write(
            &config,
            format!(
                "process.roles=broker,controller\n\
                 node.id=1\n\
                 controller.quorum.voters=1@127.0.0.1:{controller}\n\
                 listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
                 controller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 log.dirs={}\n\
                 num.partitions=1\n\
                 offsets.topic.replication.factor=1\n\
                 transaction.state.log.replication.factor=1\n\
                 transaction.state.log.min.isr=1\n\
                 share.coordinator.state.topic.replication.factor=1\n\
                 share.coordinator.state.topic.min.isr=1\n\
                 group.initial.rebalance.delay.ms=0\n\
                 auto.create.topics.enable=true\n",
                data.display()
            ),
        )?;
        let id = storage_tool(&libs, &["random-uuid"])?;
        storage_tool(
            &libs,
            &[
                "format",
                "-t",
                id.trim(),
                "-c",
                &config.display().to_string(),
            ],
        )?;
        let mut server = Self {
            process: None,
            libs,
            config,
            port,
            dir,
        };
        server.launch().await?;
        Ok(server)
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    async fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new("java");
        cmd.arg("-Xmx512m")
            .arg("-Xms128m")
            .arg("-XX:+UseSerialGC")
            .arg("-cp")
            .arg(format!("{}/*", self.libs.display()))
            .arg("kafka.Kafka")
            .arg(&self.config);
        let mut process = Process::spawn("kafka", cmd, self.dir.path())?;
        let address = self.bootstrap();
        wait_while_running(
            &mut process,
            "the Kafka broker to listen",
            Duration::from_secs(90),
            || {
                let address = address.clone();
                async move {
                    Ok(tokio::net::TcpStream::connect(&address)
                        .await
                        .ok()
                        .map(|_| ()))
                }
            },
        )
        .await?;
        self.process = Some(process);
        Ok(())
    }

    /// kill -9 of the broker.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts the broker again on the same ports and data.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch().await
    }

    /// Creates `topic` with `partitions` partitions (replication 1).
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()?;
        let created = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
            )
            .await?;
        for r in created {
            r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
        }
        Ok(())
    }

    /// The broker log's last `max` bytes.
    pub fn log_tail(&self, max: u64) -> String {
        crate::process::tail(&self.dir.path().join("kafka.log"), max)
    }
}

/// Runs `kafka.tools.StorageTool` with `args`; its standard output.
fn storage_tool(libs: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("java")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()))
        .arg("kafka.tools.StorageTool")
        .args(args)
        .output()
        .context("running java (Java 17 or later is needed for the Kafka broker)")?;
    if !out.status.success() {
        bail!(
            "StorageTool {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One record as a consumer read it.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub key: String,
    pub content_type: String,
    /// The value parsed as JSON (`Null` when it is not).
    pub event: Value,
}

impl Record {
    pub fn id(&self) -> &str {
        self.event["id"].as_str().unwrap_or_default()
    }
}

/// A consumer of every partition of a topic from the beginning, in the background,
/// through broker restarts, until dropped.
pub struct TopicReader {
    records: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
}

impl TopicReader {
    pub fn start(bootstrap: &str, topic: &str, partitions: i32) -> Result<Self> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "boxoffice-tests")
            .set("enable.auto.commit", "false")
            .set("reconnect.backoff.max.ms", "1000")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let records: Arc<Mutex<Vec<Record>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (records.clone(), stop.clone());
        tokio::spawn(async move {
            while !stopped.load(Ordering::Relaxed) {
                let message =
                    match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
                        Ok(Ok(m)) => m,
                        // Errors while the broker is away: the client reconnects itself.
                        Ok(Err(_)) | Err(_) => continue,
                    };
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let content_type = message
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == "content-type")
                            .and_then(|h| h.value.map(text))
                    })
                    .unwrap_or_default();
                let record = Record {
                    partition: message.partition(),
                    key: message.key().map(text).unwrap_or_default(),
                    content_type,
                    event: message
                        .payload()
                        .and_then(|p| serde_json::from_slice(p).ok())
                        .unwrap_or(Value::Null),
                };
                into.lock().expect("records").push(record);
            }
        });
        Ok(Self { records, stop })
    }

    /// Every record read so far, in the order read.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().expect("records").clone()
    }

    /// What a consumer keeps: the records with later copies of an event id dropped.
    pub fn deduplicated(&self) -> Vec<Record> {
        let mut seen = HashSet::new();
        self.records()
            .into_iter()
            .filter(|r| seen.insert(r.id().to_string()))
            .collect()
    }
}

impl Drop for TopicReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
