//! A keep-alive HTTP/1.1 connection for the load generators, like one of
//! wrk's: requests one after the other, no pipelining.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;

/// One connection to the bench server.
pub struct Conn {
    addr: std::net::SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn open(addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            sender: Self::handshake(addr).await?,
        })
    }

    async fn handshake(addr: std::net::SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends one request (`body` as JSON) and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let bytes = match body {
            Some(json) => Some(("application/json", Bytes::from(serde_json::to_vec(json)?))),
            None => None,
        };
        self.send_bytes(method, path, bearer, bytes).await
    }

    /// Sends one request with a body of `content_type` (a CSV upload) and
    /// reads the whole answer.
    pub async fn send_bytes(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bench");
        if let Some(key) = bearer {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                req = req.header("content-type", content_type);
                bytes
            }
            None => Bytes::new(),
        };
        // The server may close a connection after some answers (an error
        // before the body was read): open a new one, as a browser would.
        if self.sender.ready().await.is_err() {
            self.sender = Self::handshake(self.addr).await?;
        }
        let resp = self
            .sender
            .send_request(req.body(Full::new(bytes))?)
            .await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// [`Self::send`], expecting a 2xx JSON answer.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, bytes) = self.send(method.clone(), path, bearer, body).await?;
        anyhow::ensure!(
            status.is_success(),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok(serde_json::from_slice(&bytes)?)
    }
}
