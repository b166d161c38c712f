//! A small HTTP/1.1 client for the agent's API over its Unix socket.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::UnixStream;

/// The API of one agent.
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client of the agent listening on `socket`.
    pub fn new(socket: &Path) -> Self {
        Client { socket: socket.to_path_buf() }
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// POST a JSON body (or none).
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: Option<&B>) -> anyhow::Result<T> {
        self.call(Method::POST, path, body).await
    }

    /// PATCH with a JSON body.
    pub async fn patch<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// PUT a JSON body.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.call::<(), Value>(Method::DELETE, path, None).await.map(|_| ())
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            anyhow!("cannot reach hindsightd at {}: {e} (is the agent running?)", self.socket.display())
        })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("talking to hindsightd")?;
        tokio::spawn(conn);
        let bytes = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "hindsightd")
            .header("content-type", "application/json")
            .body(Full::new(bytes))?;
        let resp = sender.send_request(req).await.context("talking to hindsightd")?;
        let status = resp.status();
        let body = resp.into_body().collect().await.context("reading the agent's answer")?.to_bytes();
        if !status.is_success() {
            let msg = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(String::from))
                .unwrap_or_else(|| format!("the agent answered {status}"));
            return Err(anyhow!(msg));
        }
        if status == StatusCode::NO_CONTENT || body.is_empty() {
            return serde_json::from_value(Value::Null).context("empty answer from the agent");
        }
        serde_json::from_slice(&body).context("malformed answer from the agent")
    }
}
