//! The Kafka sink: each event is one record on the configured topic, keyed by the
//! show (`<namespace>/<name>`) so all of a show's events land on one partition in
//! sequence order. The value is the CloudEvent in structured mode
//! (`content-type: application/cloudevents+json`, as the CloudEvents Kafka binding
//! says).
//!
//! Order with many records in flight: the producer is idempotent
//! (`enable.idempotence`, hence `acks=all`; the broker accepts a producer's records
//! of a partition only in its sequence order and drops its retries), records never
//! time out inside the client (`message.timeout.ms=0`: a timeout is the one way
//! librdkafka's idempotent producer leaves a gap and sends later records on), and
//! `enable.gapless.guarantee` turns any other gap into a fatal error, after which the
//! sink builds a new producer. The relay waits for a window's acknowledgements with
//! its own deadline and, on a refusal, sends the first unacknowledged event again:
//! a copy is always queued behind the original, so a consumer that keeps the first
//! copy of each id sees the show's events in sequence order.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::time::Instant;
use tracing::warn;

use super::{CloudEvent, DeliveryError, Sink};

/// Records one delivery call may have in flight.
const WINDOW: usize = 256;

pub struct KafkaSink {
    name: String,
    topic: String,
    key: String,
    config: ClientConfig,
    producer: Mutex<FutureProducer>,
    timeout: Duration,
}

impl KafkaSink {
    /// A producer for `brokers` (comma-separated `host:port`) writing to `topic`;
    /// `timeout` bounds how long one delivery call waits for its acknowledgements.
    pub fn new(
        brokers: &str,
        topic: &str,
        show_key: &str,
        client_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "a Kafka topic is 1-249 of [a-zA-Z0-9._-]"
        );
        anyhow::ensure!(
            !brokers.trim().is_empty(),
            "the Kafka brokers are a comma-separated host:port list"
        );
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("enable.gapless.guarantee", "true")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "1")
            .set("reconnect.backoff.max.ms", "2000");
        let producer = config.create()?;
        Ok(Self {
            name: format!("kafka:{topic}"),
            topic: topic.to_string(),
            key: show_key.to_string(),
            config,
            producer: Mutex::new(producer),
            timeout,
        })
    }

    fn producer(&self) -> FutureProducer {
        self.producer.lock().expect("producer lock").clone()
    }

    /// After a fatal error (the idempotent producer could not keep its guarantee) a
    /// new producer: new producer id, empty queue; the relay sends again from the
    /// first unacknowledged event.
    fn renew_if_fatal(&self, producer: &FutureProducer) {
        let Some((code, reason)) = producer.client().fatal_error() else {
            return;
        };
        warn!(sink = %self.name, ?code, %reason, "Kafka producer failed fatally; starting a new one");
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => *self.producer.lock().expect("producer lock") = fresh,
            Err(e) => warn!(sink = %self.name, error = %e, "a new Kafka producer failed"),
        }
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn window(&self) -> usize {
        WINDOW
    }

    fn deliver<'a>(&'a self, event: &'a CloudEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            self.deliver_many(std::slice::from_ref(event))
                .await
                .pop()
                .unwrap_or_else(|| Err(DeliveryError("nothing sent".into())))
        })
    }

    fn deliver_many<'a>(
        &'a self,
        events: &'a [CloudEvent],
    ) -> BoxFuture<'a, Vec<Result<(), DeliveryError>>> {
        Box::pin(async move {
            let producer = self.producer();
            let mut results = Vec::with_capacity(events.len());
            // Queue the whole window (in order), then collect acknowledgements in order.
            let mut pending = Vec::with_capacity(events.len());
            for event in events {
                let body = match serde_json::to_vec(event) {
                    Ok(b) => b,
                    Err(e) => {
                        pending.push(Err(DeliveryError(e.to_string())));
                        break;
                    }
                };
                let record = FutureRecord::to(&self.topic)
                    .key(&self.key)
                    .payload(&body)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "content-type",
                        value: Some("application/cloudevents+json"),
                    }));
                match producer.send_result(record) {
                    Ok(delivery) => pending.push(Ok(delivery)),
                    Err((e, _)) => {
                        pending.push(Err(DeliveryError(format!(
                            "Kafka did not queue the record: {e}"
                        ))));
                        break;
                    }
                }
            }
            let deadline = Instant::now() + self.timeout;
            for p in pending {
                let result = match p {
                    Err(e) => Err(e),
                    Ok(delivery) => match tokio::time::timeout_at(deadline, delivery).await {
                        Ok(Ok(Ok(_))) => Ok(()),
                        Ok(Ok(Err((e, _)))) => {
                            Err(DeliveryError(format!("Kafka refused the record: {e}")))
                        }
                        Ok(Err(_)) => Err(DeliveryError("the Kafka producer went away".into())),
                        Err(_) => Err(DeliveryError(format!(
                            "no acknowledgement from Kafka within {:?}",
                            self.timeout
                        ))),
                    },
                };
                let refused = result.is_err();
                results.push(result);
                if refused {
                    self.renew_if_fatal(&producer);
                    break;
                }
            }
            results
        })
    }
}
