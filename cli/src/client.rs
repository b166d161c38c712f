//! A small HTTP/1.1 client for the agent's API over its Unix socket.

use std::path::{Path, PathBuf};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::UnixStream;

/// Exit statuses of the CLI (docs/cli-contract.md): what scripts test.
pub mod exit {
    /// Something failed.
    pub const FAILURE: u8 = 1;
    /// A run made its snapshots but some files or destinations failed.
    pub const PARTIAL: u8 = 3;
    /// The agent cannot be reached.
    pub const UNREACHABLE: u8 = 4;
    /// What was named does not exist.
    pub const NOT_FOUND: u8 = 5;
    /// The request conflicts with the agent's state (a name taken, in use).
    pub const CONFLICT: u8 = 6;
    /// A destination or server refused, or could not be reached for, a test.
    pub const REFUSED: u8 = 7;
    /// The API refused the credentials.
    pub const AUTHENTICATION: u8 = 8;
}

/// A request that did not succeed, with the exit status it means.
#[derive(Debug)]
pub struct Failure {
    /// Exit status (see [`exit`]).
    pub exit: u8,
    /// The API's stable error code (`not_found`, `conflict`, ...), or
    /// `unreachable` when the agent could not be reached.
    pub code: String,
    /// What went wrong, for humans.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit status of an HTTP error status.
fn exit_of(status: StatusCode) -> u8 {
    match status {
        StatusCode::NOT_FOUND => exit::NOT_FOUND,
        StatusCode::CONFLICT => exit::CONFLICT,
        StatusCode::UNPROCESSABLE_ENTITY => exit::REFUSED,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => exit::AUTHENTICATION,
        _ => exit::FAILURE,
    }
}

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
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| Failure {
            exit: exit::UNREACHABLE,
            code: "unreachable".into(),
            message: format!("cannot reach hindsightd at {}: {e} (is the agent running?)", self.socket.display()),
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
            let answer = serde_json::from_slice::<Value>(&body).ok();
            let field = |f: &str| answer.as_ref().and_then(|v| v.pointer(f)).and_then(Value::as_str).map(String::from);
            let msg = field("/error/message").unwrap_or_else(|| format!("the agent answered {status}"));
            let code = field("/error/code").unwrap_or_else(|| "failure".into());
            return Err(Failure { exit: exit_of(status), code, message: msg }.into());
        }
        if status == StatusCode::NO_CONTENT || body.is_empty() {
            return serde_json::from_value(Value::Null).context("empty answer from the agent");
        }
        serde_json::from_slice(&body).context("malformed answer from the agent")
    }
}
