//! Remote destinations against the real test servers (scripts/services/):
//! S3 add and validation with its marker, secrets never shown, logged or
//! stored in the clear, the service's own reasons for wrong credentials, a
//! missing bucket and a closed port; FTP; the option checks and clear failures
//! of the types these machines cannot reach (GCS, Google Drive, Dropbox,
//! OneDrive); and a bucket written by one agent adopted with its snapshots by
//! another.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::fixture::write;
use crate::support::http;
use crate::support::services::{self, S3Env};
use crate::support::{Daemon, Sandbox, s};

/// A root inside the shared bucket that no other test (or run) uses.
fn unique_root(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("/e2e-{what}-{}-{nanos}", std::process::id())
}

/// `-o KEY=VALUE` arguments for an S3 destination on `env` under `root`.
fn s3_args(env: &S3Env, root: &str, secret: &str) -> Vec<String> {
    [
        ("bucket", env.bucket.as_str()),
        ("endpoint", &env.endpoint),
        ("region", &env.region),
        ("access_key", &env.access_key),
        ("secret_key", secret),
        ("path", root),
        ("retries", "1"),
        ("timeout", "10"),
    ]
    .iter()
    .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={v}")])
    .collect()
}

/// `destination add NAME --type KIND ARGS... --json`.
fn add(daemon: &Daemon, name: &str, kind: &str, args: &[String]) -> crate::support::daemon::Output {
    let mut all: Vec<String> = ["destination", "add", name, "--type", kind].iter().map(|a| a.to_string()).collect();
    all.extend_from_slice(args);
    all.push("--json".into());
    daemon.cli(&all)
}

/// `POST /v1/destinations` with `body`: status and error message.
fn post_destination(daemon: &Daemon, body: Value) -> (u16, String) {
    let r = http::request(daemon.socket(), "POST", "/v1/destinations", None, body.to_string().as_bytes());
    let message = r.body["error"]["message"].as_str().unwrap_or_default().to_string();
    (r.status, message)
}

/// Asserts that adding `body` answers 422 naming every word of `words`, within `limit`.
fn assert_refused(daemon: &Daemon, body: Value, words: &[&str], limit: Duration) {
    let start = Instant::now();
    let (status, message) = post_destination(daemon, body.clone());
    let took = start.elapsed();
    assert_eq!(status, 422, "adding {body} answered {status}: {message}");
    for w in words {
        assert!(message.contains(w), "the refusal of {body} does not say {w:?}: {message}");
    }
    assert!(took < limit, "the refusal of {body} took {took:?} (limit {limit:?})");
    assert_eq!(daemon.cli_json(&["destination", "list"]), json!([]), "a refused destination was added");
}

/// Every byte of the agent's state directory (catalog, WAL, key...) as one lossy string.
fn state_bytes(daemon: &Daemon) -> Vec<u8> {
    let mut out = Vec::new();
    let dir = &daemon.opts().state_dir;
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let p = e.expect("state dir entry").path();
        if p.is_file() {
            out.extend(std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn s3_destination_is_validated_marked_and_its_secret_never_shown() {
    let env = services::s3();
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let root = unique_root("s3");
    // moto (without auth) takes any secret: a recognisable one to hunt for.
    let secret = format!("Sekr3t-{}", std::process::id());

    let out = add(&daemon, "s3", "s3", &s3_args(&env, &root, &secret));
    assert!(out.success(), "{out}\n{}", daemon.log_tail());
    let added = out.json();
    assert_eq!(added["options"]["secret_key"], "********", "{added:#}");
    assert_eq!(added["disk_usage"], Value::Null, "S3 reports no disk usage");

    let shown = daemon.cli_json(&["destination", "show", "s3"]);
    assert_eq!(shown["options"]["secret_key"], "********");
    assert_eq!(shown["options"]["bucket"], env.bucket.as_str());
    let listed = daemon.cli_json(&["destination", "list"]).to_string();
    let human = daemon.cli_ok(&["destination", "show", "s3"]).stdout;
    assert!(!listed.contains(&secret) && !human.contains(&secret), "{listed}\n{human}");

    // The marker is in the bucket: a second daemon adopting the root gets the same id.
    let other = Daemon::start(crate::support::DaemonOpts::in_dir(&sb.path().join("other")));
    let adopted = add(&other, "again", "s3", &s3_args(&env, &root, &secret));
    assert!(adopted.success(), "{adopted}\n{}", other.log_tail());
    let adopted = adopted.json();
    assert_eq!(adopted["id"], added["id"], "the root's HINDSIGHT marker holds the destination id");
    assert_eq!(adopted["readonly"], true, "another agent's destination is adopted read-only: {adopted:#}");
    other.cli_ok(&["destination", "remove", "again"]);
    let mut writable = s3_args(&env, &root, &secret);
    writable.push("--writable".into());
    let adopted = add(&other, "again", "s3", &writable);
    assert!(adopted.success(), "{adopted}\n{}", other.log_tail());
    assert_eq!(adopted.json()["readonly"], false, "--writable adopts it writable");

    // An edit that sends the secret back as shown keeps it (validation passes again).
    daemon.cli_ok(&["destination", "edit", "s3", "-o", "secret_key=********", "-o", "threads=3"]);
    daemon.cli_ok(&["destination", "validate", "s3"]);
    assert_eq!(daemon.cli_json(&["destination", "show", "s3"])["options"]["threads"], "3");

    for d in [&daemon, &other] {
        assert!(!d.log().contains(&secret), "the secret is in the daemon's log");
        assert!(!contains(&state_bytes(d), &secret), "the secret is in the clear in the state directory");
    }
}

#[test]
fn master_key_is_private_and_exported_with_a_warning() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let path = daemon.opts().state_dir.join("master.key");
    let meta = std::fs::metadata(&path).expect("master.key exists after the first start");
    assert_eq!((meta.len(), std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777), (32, 0o600));

    let out = daemon.cli_ok(&["key", "export"]);
    let hex: String = std::fs::read(&path).expect("read key").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(out.stdout.trim(), hex, "key export prints the key as hex, alone on stdout");
    assert!(out.stderr.starts_with("warning: "), "no warning on stderr:\n{out}");
    assert!(!daemon.log().contains(&hex), "the key is in the daemon's log");
}

#[test]
fn master_key_readable_by_others_stops_the_start() {
    let sb = Sandbox::new();
    let opts = sb.daemon_opts();
    let mut daemon = Daemon::start(opts.clone());
    daemon.stop();
    let key = opts.state_dir.join("master.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let (status, log) = crate::support::daemon::run_to_exit(&opts);
    assert!(!status.success(), "the daemon started with a world-readable key:\n{log}");
    assert!(log.contains("master.key") && log.contains("chmod 600"), "unclear refusal:\n{log}");
}

#[test]
fn s3_failures_give_the_services_reason() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let limit = Duration::from_secs(20);
    let auth = services::s3_auth();
    let s3 = |env: &S3Env, bucket: &str, secret: &str| {
        json!({"name": "bad", "type": "s3", "options": {
            "bucket": bucket, "endpoint": env.endpoint, "region": env.region, "access_key": env.access_key,
            "secret_key": secret, "path": unique_root("bad"), "retries": "1", "timeout": "5"}})
    };
    assert_refused(&daemon, s3(&auth, &auth.bucket, "not-the-secret"), &["SignatureDoesNotMatch"], limit);
    let open = services::s3();
    assert_refused(&daemon, s3(&open, "no-such-bucket-here", &open.secret_key), &["NoSuchBucket"], limit);

    // Nothing listens on port 1: refused at once, whatever the retries.
    let closed = S3Env { endpoint: "http://127.0.0.1:1".into(), ..open.clone() };
    assert_refused(&daemon, s3(&closed, &open.bucket, "x"), &["error sending request"], limit);
    // The answers say which failures may pass by themselves: a refused
    // connection may, a wrong secret needs the user.
    let temporary = |body: Value| {
        let r = http::request(daemon.socket(), "POST", "/v1/destinations", None, body.to_string().as_bytes());
        assert_eq!(r.status, 422, "{}", r.raw);
        r.body["error"]["temporary"].as_bool().unwrap_or(false)
    };
    assert!(temporary(s3(&closed, &open.bucket, "x")), "a refused connection is not marked temporary");
    assert!(!temporary(s3(&auth, &auth.bucket, "not-the-secret")), "a wrong secret is marked temporary");

    // The CLI prints the same reason as one error line.
    let args = s3_args(&auth, &unique_root("cli"), "wrong");
    add(&daemon, "bad", "s3", &args).assert_error(&["SignatureDoesNotMatch"]);
    assert!(!daemon.log().contains("not-the-secret"), "a refused secret is in the log");
}

#[test]
fn ftp_destination_is_validated_and_a_wrong_password_refused() {
    let env = services::ftp();
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let pw_file = sb.path().join("ftp.pw");
    write(&pw_file, format!("{}\n", env.password).as_bytes());
    let root = unique_root("ftp");
    let args: Vec<String> = [
        "-o".into(),
        format!("host={}", env.host),
        "-o".into(),
        format!("port={}", env.port),
        "-o".into(),
        format!("username={}", env.user),
        "--option-file".into(),
        format!("password={}", s(&pw_file)),
        "-o".into(),
        format!("path={root}"),
    ]
    .into();
    let out = add(&daemon, "ftp", "ftp", &args);
    assert!(out.success(), "{out}\n{}", daemon.log_tail());
    assert_eq!(out.json()["options"]["password"], "********");
    daemon.cli_ok(&["destination", "validate", "ftp"]);
    assert_eq!(daemon.cli_json(&["destination", "reindex", "ftp"]), json!([]));
    assert!(!contains(&state_bytes(&daemon), &env.password), "the FTP password is in the clear in the state dir");

    let bad = json!({"name": "bad", "type": "ftp", "options": {
        "host": env.host, "port": env.port.to_string(), "username": env.user, "password": "wrong",
        "path": unique_root("ftpbad"), "retries": "0", "timeout": "5"}});
    let (status, message) = post_destination(&daemon, bad);
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("530"), "the server's reply is not in the message: {message}");
}

#[test]
fn unreachable_services_fail_option_checks_and_validation_clearly() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let bad_request = |body: Value, words: &[&str]| {
        let (status, message) = post_destination(&daemon, body.clone());
        assert_eq!(status, 400, "{body}: {message}");
        for w in words {
            assert!(message.contains(w), "{body}: {message} does not say {w:?}");
        }
    };
    bad_request(json!({"name": "g", "type": "gcs", "options": {}}), &["bucket is required"]);
    bad_request(json!({"name": "g", "type": "gdrive", "options": {}}), &["access_token", "refresh_token"]);
    bad_request(json!({"name": "g", "type": "dropbox", "options": {"refresh_token": "r"}}), &["client_id"]);
    bad_request(json!({"name": "g", "type": "onedrive", "options": {"access_token": "t", "bogus": "1"}}), &["bogus"]);
    bad_request(json!({"name": "g", "type": "s3", "options": {"bucket": "b", "retries": "11"}}), &["retries"]);
    bad_request(json!({"name": "g", "type": "webdav", "options": {}}), &["unknown destination type", "s3"]);

    // No network but loopback: every one of them must fail at validation, quickly and saying why.
    let quick = json!({"retries": "0", "timeout": "5"});
    let with = |kind: &str, extra: Value| {
        let mut o = quick.as_object().cloned().unwrap_or_default();
        o.extend(extra.as_object().cloned().unwrap_or_default());
        json!({"name": "g", "type": kind, "options": o})
    };
    let limit = Duration::from_secs(20);
    assert_refused(&daemon, with("gcs", json!({"bucket": "b", "endpoint": "http://127.0.0.1:1"})), &["gcs"], limit);
    for kind in ["gdrive", "dropbox", "onedrive"] {
        assert_refused(&daemon, with(kind, json!({"access_token": "token"})), &[kind], limit);
    }

    let types = daemon.cli_json(&["destination", "types"]);
    let names: Vec<&str> = types.as_array().expect("array").iter().filter_map(|t| t["name"].as_str()).collect();
    for kind in ["local", "s3", "gcs", "ftp", "gdrive", "dropbox", "onedrive"] {
        assert!(names.contains(&kind), "{kind} is not listed by destination types: {names:?}");
    }
    let human = daemon.cli_ok(&["destination", "types"]).stdout;
    assert!(human.contains("secret_key") && human.contains("(secret"), "{human}");
}

#[test]
fn s3_destination_written_by_another_agent_is_adopted_with_its_snapshots() {
    let env = services::s3();
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src.join("a.txt"), b"alpha\n");
    write(&src.join("sub/b.txt"), b"bravo\n");
    let root = unique_root("adopt");
    let args = s3_args(&env, &root, &env.secret_key);

    let first = Daemon::start(sb.daemon_opts());
    assert!(add(&first, "bucket", "s3", &args).success());
    first.add_job("j1", &[&src], &["bucket"], &[]);
    first.run_job_wait("j1");
    first.run_job_wait("j1");
    let made: Vec<Value> =
        first.cli_json(&["snapshot", "list", "--destination", "bucket"]).as_array().cloned().unwrap_or_default();
    assert_eq!(made.len(), 2, "{made:#?}");

    // A fresh agent (new state dir, new master key) adds the same root.
    let second = Daemon::start(crate::support::DaemonOpts::in_dir(&sb.path().join("second")));
    let out = add(&second, "found", "s3", &args);
    assert!(out.success(), "{out}\n{}", second.log_tail());
    let names = |d: &Daemon, dest: &str| -> Vec<String> {
        let list = d.cli_json(&["snapshot", "list", "--destination", dest]);
        let mut v: Vec<String> = list
            .as_array()
            .expect("array")
            .iter()
            .map(|s| format!("{}/{}", s["job"].as_str().unwrap_or(""), s["name"].as_str().unwrap_or("")))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&second, "found"), names(&first, "bucket"), "adopted snapshots");
    assert_eq!(out.json()["readonly"], true, "adopted read-only: the first agent still writes there");

    // Another backup by the first agent shows up on the second after a reindex.
    first.run_job_wait("j1");
    let reindexed = second.cli_json(&["destination", "reindex", "found"]);
    assert_eq!(reindexed.as_array().map(Vec::len), Some(3), "{reindexed:#}");
    assert_eq!(names(&second, "found"), names(&first, "bucket"));
    assert_eq!(reindexed[0]["path"], Value::Null, "remote snapshots have no local path");
}

#[test]
fn an_s3_server_with_a_self_signed_certificate_needs_verify_tls_false() {
    use crate::support::remote::{Kind, PrivateServer};
    let sb = Sandbox::new();
    let server = PrivateServer::start_with(Kind::S3, &sb.path().join("moto-tls"), &[("MOTO_TLS", "1")]);
    let remote = server.remote("tls");
    let daemon = Daemon::start(sb.daemon_opts());
    let add = |name: &str, extra: &[(&str, &str)]| {
        let mut args = vec!["destination".to_string(), "add".into(), name.into()];
        args.extend(remote.add_args(extra));
        daemon.cli(&args)
    };
    // A refused certificate is no temporary failure: refused at once, not after retries.
    let asked = Instant::now();
    let refused = add("strict", &[]);
    let took = asked.elapsed();
    assert!(!refused.success(), "a self-signed certificate was accepted with verify_tls on:\n{refused}");
    assert!(
        refused.stderr.contains("certificate") && refused.stderr.contains("verify_tls=false"),
        "the refusal does not say why and what to do:\n{refused}"
    );
    assert!(took < Duration::from_secs(8), "the refusal took {took:?}: retried as if temporary");
    let accepted = add("lenient", &[("verify_tls", "false")]);
    assert!(accepted.success(), "verify_tls=false did not accept the server:\n{accepted}\n{}", daemon.log_tail());
    let src = sb.dir("src");
    write(&src.join("f.txt"), b"over TLS\n");
    daemon.add_job("j", &[&src], &["lenient"], &[]);
    let run = daemon.run_job_wait("j");
    assert_eq!(run["state"], "completed");
    let check = daemon.cli(["destination", "check", "lenient", "--read-data"]);
    assert!(check.success(), "{check}");
}

/// `hindsight destination add NAME --type ftp ARGS... --json` with `env` added.
fn add_with_env(daemon: &Daemon, name: &str, args: &[String], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(crate::support::hindsight_bin())
        .arg("--socket")
        .arg(daemon.socket())
        .args(["destination", "add", name, "--type", "ftp", "--json"])
        .args(args)
        .env_remove("HINDSIGHT_SOCKET")
        .envs(env.iter().copied())
        .output()
        .expect("run hindsight")
}

#[test]
fn a_secret_option_comes_from_a_file_or_a_command_in_the_environment() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let ftp = services::ftp();
    // The FTP server checks the password: only the right one is accepted.
    let args = |root: &str| -> Vec<String> {
        let port = ftp.port.to_string();
        [("host", ftp.host.as_str()), ("port", &port), ("username", &ftp.user), ("path", root)]
            .iter()
            .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={v}")])
            .collect()
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let wrong =
        add_with_env(&daemon, "wrong", &args(&unique_root("w")), &[("HINDSIGHT_PASSWORD_COMMAND", "echo nope")]);
    assert_eq!(wrong.status.code(), Some(7), "{}", stderr(&wrong));

    let command = format!("printf '%s\\n' '{}'", ftp.password);
    let by_command =
        add_with_env(&daemon, "by-command", &args(&unique_root("c")), &[("HINDSIGHT_PASSWORD_COMMAND", &command)]);
    assert!(by_command.status.success(), "{}", stderr(&by_command));

    let file = sb.path().join("password");
    write(&file, format!("{}\n", ftp.password).as_bytes());
    let by_file = add_with_env(&daemon, "by-file", &args(&unique_root("f")), &[("HINDSIGHT_PASSWORD_FILE", s(&file))]);
    assert!(by_file.status.success(), "{}", stderr(&by_file));
    let shown = daemon.cli_json(&["destination", "show", "by-file"]);
    assert_eq!(shown["options"]["password"], "********", "{shown:#}");

    let failing = add_with_env(
        &daemon,
        "failing",
        &args(&unique_root("x")),
        &[("HINDSIGHT_PASSWORD_COMMAND", "echo oops >&2; exit 3")],
    );
    assert_eq!(failing.status.code(), Some(1));
    assert!(stderr(&failing).contains("oops"), "the command's own words are quoted: {}", stderr(&failing));
}
