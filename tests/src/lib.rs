//! boxoffice-e2e: the test harness (real etcd, PostgreSQL and Kubernetes control plane
//! processes on loopback) that the end-to-end tests under `tests/tests/` use.

pub mod campaign;
pub mod control_plane;
pub mod etcd;
pub mod gateway;
pub mod kafka;
pub mod pods;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod shard;
pub mod tls;
pub mod tools;
pub mod webhook;

pub use control_plane::ControlPlane;
pub use etcd::{EtcdOptions, EtcdSecurity, EtcdServer, EtcdTls, EtcdUser};
pub use kafka::{KafkaServer, TopicReader};
pub use postgres::PostgresServer;
pub use process::{Process, free_port, wait_for, wait_while_running};
pub use shard::{ShardOptions, ShardProcess, token};
pub use tls::{CertFiles, Pki};
