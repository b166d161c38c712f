//! The remote destinations' test servers are up and reachable from the tests:
//! both S3 servers answer HTTP (the open one lists its bucket, the one with
//! authentication refuses an unsigned request), sshd accepts the client key
//! and has GNU tar and find, the FTP server greets and logs the user in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::support::services;

const TIMEOUT: Duration = Duration::from_secs(10);

fn connect(authority: &str) -> TcpStream {
    let addr = authority
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("resolve {authority}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("{authority} resolves to nothing"));
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| panic!("connect to {authority}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).expect("set a read timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("set a write timeout");
    stream
}

/// Status code of an unsigned `GET path`.
fn http_get_status(authority: &str, path: &str) -> u16 {
    let mut stream = connect(authority);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
        .unwrap_or_else(|e| panic!("send a GET to {authority}: {e}"));
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap_or_else(|e| panic!("read the answer of {authority}: {e}"));
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or("");
    let code = status_line.strip_prefix("HTTP/1.1 ").or_else(|| status_line.strip_prefix("HTTP/1.0 "));
    code.and_then(|c| c.get(..3)).and_then(|c| c.parse().ok()).unwrap_or_else(|| {
        panic!("{authority} did not answer HTTP: {:?}", answer.chars().take(200).collect::<String>())
    })
}

#[test]
fn s3_servers_answer_http() {
    let open = services::s3();
    let status = http_get_status(open.authority(), &format!("/{}", open.bucket));
    assert_eq!(status, 200, "listing bucket {} on {}", open.bucket, open.endpoint);

    let auth = services::s3_auth();
    assert_ne!(auth.access_key, "testing", "the S3 server with authentication has its own key");
    let status = http_get_status(auth.authority(), &format!("/{}", auth.bucket));
    assert!(
        !(200..300).contains(&status),
        "{} accepted an unsigned request (status {status}): authentication is not enforced",
        auth.endpoint
    );
}

#[test]
fn sshd_accepts_the_client_key_and_has_gnu_tar_and_find() {
    let ssh = services::ssh();
    for remote in ["true", "tar --version | grep -q 'GNU tar'", "find --version | grep -q 'GNU findutils'"] {
        let out = ssh.command(remote).output().expect("run ssh");
        assert!(
            out.status.success(),
            "ssh {} -p {} {remote:?}: {}\n{}",
            ssh.destination(),
            ssh.port,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn ftp_server_greets_and_logs_in() {
    let ftp = services::ftp();
    let authority = format!("{}:{}", ftp.host, ftp.port);
    let mut stream = connect(&authority);
    let mut reader = BufReader::new(stream.try_clone().expect("clone the FTP stream"));
    let mut reply = |expect: &str, what: &str| {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap_or_else(|e| panic!("read the FTP reply to {what}: {e}"));
        assert!(line.starts_with(expect), "FTP reply to {what}: {line:?}, expected {expect}");
    };
    reply("220", "connecting");
    write!(stream, "USER {}\r\n", ftp.user).expect("send USER");
    reply("331", "USER");
    write!(stream, "PASS {}\r\n", ftp.password).expect("send PASS");
    reply("230", "PASS");
    write!(stream, "QUIT\r\n").expect("send QUIT");
    reply("221", "QUIT");
}
