//! Raw HTTP/1.1 over the agent's Unix socket, for requests the CLI never
//! sends (malformed bodies).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// An answer of the API.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body parsed as JSON (`Null` when empty).
    pub body: Value,
    /// The raw answer, for messages.
    pub raw: String,
}

/// Sends one request with `body` (and `Content-Type: application/json`
/// unless `content_type` says otherwise) and reads the whole answer.
pub fn request(socket: &Path, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let mut stream = UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set a read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: hindsightd\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type.or(Some("application/json")).filter(|ct| !ct.is_empty()) {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    let request = [head.as_bytes(), body].concat();
    match stream.write_all(&request) {
        Ok(()) => {}
        // The agent may answer and close before reading a body it rejects.
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
        Err(e) => panic!("send the request: {e}"),
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of headers in {raw:?}"));
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "chunked answers are not handled here: {raw:?}"
    );
    let status =
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {raw:?}"));
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("the body is not JSON ({e}): {raw:?}"))
    };
    Response { status, body, raw }
}
