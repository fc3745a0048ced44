//! A TCP proxy that can partition one process from one server.
//!
//! Each shard replica in the fault campaign reaches etcd and PostgreSQL through its own
//! proxies, so the nemesis can cut exactly one link (leader ↔ etcd, leader ↔ PostgreSQL)
//! while every other link keeps working. A cut is a black hole, like a real partition:
//! connections stay open but no byte crosses, and new connections are accepted and then
//! hang. Healing drops every connection that lived through the cut (their peers have
//! usually given up on them; a real network would reset them too) and lets new ones
//! through.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// One proxy: a loopback port forwarding to `upstream`.
pub struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (cut, _) = watch::channel(false);
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let cut = cut.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                while let Ok((downstream, _)) = listener.accept().await {
                    let _ = downstream.set_nodelay(true);
                    let task = tokio::spawn(forward(downstream, upstream, cut.subscribe()));
                    let mut list = connections.lock().unwrap_or_else(|e| e.into_inner());
                    list.retain(|h| !h.is_finished());
                    list.push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        Ok(Self {
            port,
            cut,
            connections,
            accept,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the link is cut now.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Cuts the link: no byte crosses until [`Self::heal`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Heals the link: drops the connections that lived through the cut and lets new
    /// ones through.
    pub fn heal(&self) {
        if !self.cut.send_replace(false) {
            return;
        }
        let list = std::mem::take(&mut *self.connections.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in list {
            handle.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for handle in self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            handle.abort();
        }
    }
}

/// Waits out a cut; a connection caught by one never moves a byte again (heal aborts it).
async fn wait_uncut(cut: &mut watch::Receiver<bool>) {
    if *cut.borrow_and_update() {
        std::future::pending::<()>().await;
    }
}

async fn cut_happens(cut: &mut watch::Receiver<bool>) {
    if cut.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn forward(downstream: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<bool>) {
    wait_uncut(&mut cut).await;
    let Ok(upstream) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (dr, dw) = downstream.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::select! {
        _ = pump(dr, uw, cut.clone()) => {}
        _ = pump(ur, dw, cut) => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => Some(r),
            _ = cut_happens(&mut cut) => None,
        };
        let n = match read {
            // Cut while waiting for data: hang from now on.
            None => std::future::pending::<usize>().await,
            Some(Ok(0)) | Some(Err(_)) => break,
            Some(Ok(n)) => n,
        };
        wait_uncut(&mut cut).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
        s.write_all(msg).await.ok()?;
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf)
    }

    #[tokio::test]
    async fn forwards_blackholes_and_heals() {
        let proxy = Proxy::start(echo_server().await).await.unwrap();
        let addr = format!("127.0.0.1:{}", proxy.port());
        let mut a = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            roundtrip(&mut a, b"ping").await.as_deref(),
            Some(&b"ping"[..])
        );

        proxy.cut();
        assert!(proxy.is_cut());
        assert_eq!(
            roundtrip(&mut a, b"lost").await,
            None,
            "bytes crossed a cut"
        );
        let mut b = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            roundtrip(&mut b, b"new").await,
            None,
            "a new connection crossed a cut"
        );

        proxy.heal();
        // Connections that lived through the cut are dropped ...
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(1), a.read(&mut buf))
            .await
            .expect("the old connection is closed at heal")
            .unwrap_or(0);
        assert_eq!(n, 0);
        // ... and new ones pass.
        let mut c = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            roundtrip(&mut c, b"back").await.as_deref(),
            Some(&b"back"[..])
        );
    }
}
