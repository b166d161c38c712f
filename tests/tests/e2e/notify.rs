//! Nobody has to watch it: `status --check` for monitoring systems, alerts
//! logged at their level, and notification integrations (webhooks, mail)
//! that receive the alerts they asked for, in real time or in a daily digest,
//! with retries when their server is down, and secrets never shown.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::Output;
use crate::support::http::request;
use crate::support::receiver::Receiver;
use crate::support::{DEST, Daemon, JOB, fixture, wait_until};

/// Within this a real-time notification has reached its server.
const PROMPTLY: Duration = Duration::from_secs(20);

/// The usual arrangement (a small tree, destination [`DEST`], job [`JOB`]),
/// with the ways these tests make a run fail or go partial.
struct Setup(crate::support::Setup);

impl Deref for Setup {
    type Target = crate::support::Setup;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Setup {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Setup {
    fn new() -> Setup {
        Setup(crate::support::Setup::new(fixture::small_tree))
    }

    /// A run that fails: its source is gone. Returns the run's id.
    fn failed_run(&self) -> i64 {
        let moved = self.sb.path().join("src-away");
        std::fs::rename(&self.src, &moved).expect("move the source away");
        let (code, run) = self.daemon.run_wait(JOB);
        std::fs::rename(&moved, &self.src).expect("bring the source back");
        assert_eq!((code, run["state"].as_str()), (1, Some("failed")), "{run:#}");
        run["id"].as_i64().expect("run id")
    }

    /// A run that is partial: a second destination, gone since it was added,
    /// fails while the first gets its snapshot.
    fn partial_run(&self) -> i64 {
        let gone = self.sb.path().join("gone");
        self.daemon.add_destination("gone", &gone, &[]);
        self.daemon.cli_ok(&["job", "edit", JOB, "--destination", DEST, "--destination", "gone"]);
        std::fs::remove_dir_all(&gone).expect("remove the second destination");
        let (code, run) = self.daemon.run_wait(JOB);
        assert_eq!((code, run["state"].as_str()), (3, Some("partial")), "{run:#}");
        self.daemon.cli_ok(&["job", "edit", JOB, "--destination", DEST]);
        run["id"].as_i64().expect("run id")
    }

    /// `notify add NAME --type webhook --url URL EXTRA...`.
    fn add_webhook(&self, name: &str, url: &str, extra: &[&str]) -> Value {
        let mut args = vec!["notify", "add", name, "--type", "webhook", "--url", url];
        args.extend_from_slice(extra);
        self.daemon.cli_json(&args)
    }

    fn open_alerts(&self) -> Vec<Value> {
        self.daemon.cli_json(&["alert", "list"]).as_array().cloned().unwrap_or_default()
    }
}

/// The requests `r` received so far, as JSON bodies.
fn bodies(r: &Receiver) -> Vec<Value> {
    r.received().iter().map(|q| q.json()).collect()
}

fn check(daemon: &Daemon) -> Output {
    daemon.cli(["status", "--check"])
}

#[test]
fn status_check_exits_like_a_nagios_plugin_and_runs_are_logged_at_their_level() {
    let mut t = Setup::new();
    let ok = check(&t.daemon);
    assert_eq!(ok.code, 0, "{ok}");
    assert!(ok.stdout.starts_with("HINDSIGHT OK - no alert open; 1 jobs"), "{ok}");
    assert_eq!(ok.stdout.lines().count(), 1, "one line: {ok}");

    let failed = t.failed_run();
    let critical = check(&t.daemon);
    assert_eq!(critical.code, 2, "{critical}");
    assert!(critical.stdout.starts_with("HINDSIGHT CRITICAL - 1 critical and 0 warning alerts open"), "{critical}");
    assert!(critical.stdout.contains(&format!("run {failed} of job {JOB} failed")), "{critical}");
    let log = t.daemon.log();
    let line =
        log.lines().find(|l| l.contains("run ended: failed")).unwrap_or_else(|| panic!("no end of run logged:\n{log}"));
    assert!(
        line.contains("ERROR") && line.contains("No such file or directory"),
        "the failure is not an ERROR with its reason: {line}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("run_failed") && l.contains(&format!("run {failed} of job"))),
        "the critical alert is not logged as an ERROR:\n{log}"
    );

    for a in t.open_alerts() {
        t.daemon.cli_ok(&["alert", "ack", &a["id"].to_string()]);
    }
    assert_eq!(check(&t.daemon).code, 0);

    t.partial_run();
    let warning = check(&t.daemon);
    assert_eq!(warning.code, 1, "{warning}");
    assert!(warning.stdout.starts_with("HINDSIGHT WARNING - 1 warning alerts open"), "{warning}");
    let log = t.daemon.log();
    assert!(
        log.lines().any(|l| l.contains("WARN") && l.contains("run ended: partial")),
        "the partial run is not logged as a warning:\n{log}"
    );

    t.daemon.stop();
    let unknown = check(&t.daemon);
    assert_eq!(unknown.code, 3, "{unknown}");
    assert!(unknown.stdout.starts_with("HINDSIGHT UNKNOWN - the agent cannot be reached"), "{unknown}");
}

#[test]
fn a_failed_backup_is_posted_at_once_and_a_partial_one_reaches_only_integrations_taking_warnings() {
    let t = Setup::new();
    let (critical_only, both) = (Receiver::start(), Receiver::start());
    let secret = "Bearer s3cret-webhook-token";
    t.add_webhook(
        "oncall",
        &critical_only.url("/hook?team=ops"),
        &["--level", "critical", "--secret-header", &format!("Authorization={secret}"), "--header", "X-Team=ops"],
    );
    t.add_webhook("chat", &both.url("/chat"), &[]);

    let shown = t.daemon.cli_json(&["notify", "show", "oncall"]);
    assert_eq!(shown["settings"]["headers"][0]["value"], "ops", "{shown:#}");
    assert_eq!(shown["settings"]["headers"][1]["value"], "********", "{shown:#}");
    assert_eq!(shown["levels"], serde_json::json!({"critical": "realtime"}), "{shown:#}");
    let listed = t.daemon.cli_ok(&["notify", "list"]);
    assert!(listed.stdout.contains("oncall") && listed.stdout.contains("chat"), "{listed}");

    let run = t.failed_run();
    let got =
        wait_until("the critical alert at the on-call webhook", PROMPTLY, || critical_only.received().first().cloned());
    assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/hook?team=ops"));
    assert_eq!(got.header("authorization"), Some(secret));
    assert_eq!(got.header("x-team"), Some("ops"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let body = got.json();
    assert_eq!((body["level"].as_str(), body["kind"].as_str()), (Some("critical"), Some("run_failed")), "{body:#}");
    assert_eq!((body["job"].as_str(), body["run"].as_i64()), (Some(JOB), Some(run)), "{body:#}");
    assert!(body["destination"].is_null() && body["id"].as_i64() > Some(0), "{body:#}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("failed")), "{body:#}");
    assert!(body["host"].as_str().is_some_and(|h| !h.is_empty()) && body["time"].is_string(), "{body:#}");
    wait_until("the critical alert at the chat webhook", PROMPTLY, || (bodies(&both).len() == 1).then_some(()));

    t.partial_run();
    let warning = wait_until("the warning at the chat webhook", PROMPTLY, || bodies(&both).get(1).cloned());
    assert_eq!((warning["level"].as_str(), warning["kind"].as_str()), (Some("warning"), Some("run_partial")));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(critical_only.received().len(), 1, "a warning reached an integration taking critical alerts only");

    let shown = t.daemon.cli_json(&["notify", "show", "oncall"]);
    let delivery = &shown["deliveries"][0];
    assert_eq!((delivery["state"].as_str(), delivery["attempts"].as_u64()), (Some("sent"), Some(1)), "{shown:#}");
    assert!(delivery["answer"].as_str().is_some_and(|a| a.starts_with("HTTP 200")), "{shown:#}");
    let log = t.daemon.log();
    assert!(!log.contains("s3cret-webhook-token"), "the secret header is in the log");
    let out = t.daemon.cli_ok(&["notify", "show", "oncall"]);
    assert!(!out.stdout.contains("s3cret") && out.stdout.contains("********"), "{out}");
}

#[test]
fn a_webhook_that_fails_is_retried_raises_its_own_warning_and_never_hears_of_it() {
    let t = Setup::new();
    let r = Receiver::start();
    r.answer(500);
    t.add_webhook("flaky", &r.url("/"), &[]);
    t.failed_run();
    wait_until("the first attempt", PROMPTLY, || r.received().first().cloned());
    let failing = wait_until("a notify_failed alert", PROMPTLY, || {
        t.open_alerts().into_iter().find(|a| a["kind"] == "notify_failed")
    });
    assert_eq!((failing["level"].as_str(), failing["subject"].as_str()), (Some("warning"), Some("flaky")));
    assert!(
        failing["message"].as_str().is_some_and(|m| m.contains("HTTP 500") && m.contains("retry 1 of 10")),
        "{failing:#}"
    );
    let shown = t.daemon.cli_json(&["notify", "show", "flaky"]);
    assert_eq!(shown["pending"], 1, "{shown:#}");
    assert!(shown["last_error"].as_str().is_some_and(|e| e.contains("HTTP 500")), "{shown:#}");

    // The server is back: the retry (10 s after the failure) delivers the same alert.
    r.answer(200);
    wait_until("the retry", Duration::from_secs(40), || (r.received().len() >= 2).then_some(()));
    let sent = r.received();
    assert_eq!(sent[1].json()["id"], sent[0].json()["id"], "the retry carries the same alert");
    assert!(sent.iter().all(|q| q.json()["kind"] == "run_failed"), "the integration heard of its own failure");
    let shown = wait_until("the delivery recorded", PROMPTLY, || {
        let v = t.daemon.cli_json(&["notify", "show", "flaky"]);
        (v["pending"] == 0).then_some(v)
    });
    assert_eq!(
        (shown["deliveries"][0]["state"].as_str(), shown["deliveries"][0]["attempts"].as_u64()),
        (Some("sent"), Some(2))
    );
    assert!(shown["last_error"].is_null(), "{shown:#}");
    assert!(
        t.open_alerts().iter().all(|a| a["kind"] != "notify_failed"),
        "the integration delivers again, yet its alert is still open"
    );
}

#[test]
fn a_webhook_that_hangs_times_out_and_blocks_no_backup() {
    let t = Setup::new();
    let r = Receiver::start();
    r.hang(true);
    t.add_webhook("stuck", &r.url("/"), &["--timeout", "2", "--retries", "0"]);
    t.failed_run();
    wait_until("the request", PROMPTLY, || r.received().first().cloned());
    // Backups go on while the server sits on the request.
    t.daemon.run_job_wait(JOB);
    let shown = wait_until("the attempt given up", PROMPTLY, || {
        let v = t.daemon.cli_json(&["notify", "show", "stuck"]);
        (v["deliveries"][0]["state"] == "failed").then_some(v)
    });
    assert!(
        shown["last_error"].as_str().is_some_and(|e| e.contains("timeout") || e.contains("timed out")),
        "{shown:#}"
    );
}

#[test]
fn the_daily_digest_holds_the_days_alerts_once() {
    let t = Setup::new();
    let r = Receiver::start();
    // The next whole minute at least 20 s ahead, in the agent's (the host's) time zone.
    let out = std::process::Command::new("date").args(["-d", "+80 seconds", "+%H:%M"]).output().expect("date");
    let at = String::from_utf8_lossy(&out.stdout).trim().to_string();
    t.add_webhook(
        "daily",
        &r.url("/digest"),
        &["--level", "warning:digest", "--level", "critical:digest", "--digest-at", &at],
    );
    let run = t.failed_run();
    t.partial_run();
    std::thread::sleep(Duration::from_secs(2));
    assert!(r.received().is_empty(), "a digest integration was sent an alert at once");
    let digest = wait_until("the digest", Duration::from_secs(150), || r.received().first().cloned()).json();
    assert_eq!(digest["digest"], true, "{digest:#}");
    let alerts = digest["alerts"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<&str> = alerts.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(kinds, ["run_failed", "run_partial"], "{digest:#}");
    assert_eq!(alerts[0]["run"].as_i64(), Some(run));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(r.received().len(), 1, "the digest was sent more than once");
    let shown = t.daemon.cli_json(&["notify", "show", "daily"]);
    let states: Vec<&str> =
        shown["deliveries"].as_array().into_iter().flatten().filter_map(|d| d["state"].as_str()).collect();
    assert_eq!(states, ["sent", "digested", "digested"], "{shown:#}");
}

#[test]
fn bad_integrations_are_refused_with_the_reason_at_add_time() {
    let t = Setup::new();
    let add = |args: &[&str]| {
        let mut all = vec!["notify", "add", "x"];
        all.extend_from_slice(args);
        t.daemon.cli(all)
    };
    add(&["--type", "webhook", "--url", "ftp://example.org/"]).assert_error(&["url", "http://"]);
    add(&["--type", "webhook", "--url", "http://127.0.0.1:9/", "--level", "urgent"])
        .assert_error(&["alert level", "urgent"]);
    add(&["--type", "webhook", "--url", "http://127.0.0.1:9/", "--digest-at", "25:00"])
        .assert_error(&["digest time", "HH:MM"]);
    add(&["--type", "sms"]).assert_error(&["sms"]);
    add(&["--type", "email", "--from", "a@example.org", "--to", "not an address", "--host", "127.0.0.1"])
        .assert_error(&["to:", "not an address"]);
    add(&[
        "--type",
        "email",
        "--from",
        "a@example.org",
        "--to",
        "b@example.org",
        "--host",
        "127.0.0.1",
        "--security",
        "ssl",
    ])
    .assert_error(&["smtp security", "ssl"]);
    t.add_webhook("dup", "http://127.0.0.1:9/", &[]);
    t.daemon
        .cli(["notify", "add", "dup", "--type", "webhook", "--url", "http://127.0.0.1:9/"])
        .assert_error_code(6, &["already exists"]);
    t.daemon.cli(["notify", "test", "nope"]).assert_error_code(5, &["no notification integration named nope"]);
    let refused = t.daemon.cli(["notify", "test", "dup"]);
    assert_eq!(refused.code, 7, "a test the server refused: {refused}");
    assert!(refused.stderr.contains("notification integration dup:"), "{refused}");

    let raw = request(
        t.daemon.socket(),
        "POST",
        "/v1/notifiers",
        None,
        br#"{"name": "y", "settings": {"type": "webhook", "url": "http://127.0.0.1:9/"}, "levels": {"urgent": "realtime"}}"#,
    );
    assert_eq!(raw.status, 400, "{raw:?}");
    assert!(raw.raw.contains("urgent"), "{raw:?}");
    let listed = t.daemon.cli_json(&["notify", "list"]);
    let names: Vec<&str> = listed.as_array().into_iter().flatten().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["dup"]);
}

/// The mails in `maildir/new` addressed to a recipient holding `tag`.
fn mails_to(maildir: &std::path::Path, tag: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|m| m.lines().any(|l| l.starts_with("X-RcptTo:") && l.contains(tag)))
        .collect();
    out.sort();
    out
}

#[test]
fn a_failed_backup_is_mailed_to_every_recipient_over_starttls_with_authentication() {
    let smtp = crate::support::services::smtp();
    let t = Setup::new();
    // Recipients unique to this test: the server's Maildir is shared.
    let tag = format!("t{}", std::process::id());
    let (ops, dba) = (format!("ops-{tag}@example.org"), format!("dba-{tag}@example.org"));
    let password = t.sb.path().join("smtp-password");
    fixture::write(&password, format!("{}\n", smtp.password).as_bytes());
    let port = smtp.port.to_string();
    let mut args = vec!["notify", "add", "mail", "--type", "email", "--from", "hindsight@example.org"];
    args.extend(["--to", &ops, "--to", &dba, "--host", &smtp.host, "--port", &port, "--security", "starttls"]);
    args.extend(["--username", &smtp.user, "--password-file", crate::support::s(&password), "--level", "critical"]);
    // The test server's certificate is self-signed: refused while it is verified.
    t.daemon.cli_json(&args);
    let refused = t.daemon.cli(["notify", "test", "mail"]);
    assert_eq!(refused.code, 7, "a test the server refused: {refused}");
    assert!(refused.stderr.to_lowercase().contains("certificate"), "{refused}");
    t.daemon.cli_json(&["notify", "edit", "mail", "--verify-tls", "false"]);
    let tested = t.daemon.cli_ok(&["notify", "test", "mail"]);
    assert!(tested.stdout.contains("SMTP 250"), "{tested}");
    let shown = t.daemon.cli_json(&["notify", "show", "mail"]);
    assert_eq!(shown["settings"]["password"], "********", "{shown:#}");

    let run = t.failed_run();
    let mails = wait_until("the mail of the failed run", PROMPTLY, || {
        let m = mails_to(&smtp.maildir, &tag);
        (m.len() >= 2).then_some(m)
    });
    let alert = mails.iter().find(|m| !m.contains("test message")).expect("the alert's mail");
    for who in [&ops, &dba] {
        assert!(alert.contains(who.as_str()), "{who} is not a recipient:\n{alert}");
    }
    let subject = alert.lines().find(|l| l.starts_with("Subject:")).unwrap_or_default();
    assert!(subject.contains(&format!("CRITICAL: run_failed job {JOB}")), "{subject}");
    assert!(alert.contains(&format!("run {run} of job {JOB} failed")) && alert.contains("level: critical"), "{alert}");
    assert!(!t.daemon.log().contains(&smtp.password), "the SMTP password is in the log");

    // A wrong password: the server's refusal is what `notify test` reports.
    let wrong = t.sb.path().join("wrong");
    fixture::write(&wrong, b"not-the-password");
    t.daemon.cli_json(&["notify", "edit", "mail", "--password-file", crate::support::s(&wrong)]);
    let denied = t.daemon.cli(["notify", "test", "mail"]);
    assert_eq!(denied.code, 7, "a test the server refused: {denied}");
    assert!(denied.stderr.contains("535"), "{denied}");
}

#[test]
fn a_notification_not_delivered_before_a_crash_is_delivered_after_the_restart() {
    let mut t = Setup::new();
    let r = Receiver::start();
    r.answer(503);
    t.add_webhook("hook", &r.url("/"), &[]);
    t.failed_run();
    let first = wait_until("the first attempt", PROMPTLY, || r.received().first().cloned());
    t.daemon.kill9();
    r.answer(200);
    t.daemon.restart();
    let got = wait_until("the retry after the restart", Duration::from_secs(60), || {
        let got = r.received();
        (got.len() >= 2).then_some(got)
    });
    assert_eq!(got[1].json()["id"], first.json()["id"], "the retry carries the alert queued before the crash");
    let shown = wait_until("the delivery recorded", PROMPTLY, || {
        let v = t.daemon.cli_json(&["notify", "show", "hook"]);
        (v["pending"] == 0).then_some(v)
    });
    assert_eq!(shown["deliveries"][0]["state"], "sent", "{shown:#}");
}

#[test]
fn a_mail_server_that_is_down_raises_a_warning_naming_the_reason() {
    let t = Setup::new();
    let free =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
    let port = free.to_string();
    let args = ["notify", "add", "mail", "--type", "email", "--from", "a@example.org", "--to", "b@example.org"];
    let mut args = args.to_vec();
    args.extend(["--host", "127.0.0.1", "--port", &port, "--security", "none", "--level", "critical"]);
    t.daemon.cli_json(&args);
    t.failed_run();
    let failing = wait_until("a notify_failed alert", PROMPTLY, || {
        t.open_alerts().into_iter().find(|a| a["kind"] == "notify_failed")
    });
    let text = failing["message"].as_str().unwrap_or_default().to_lowercase();
    assert!(text.contains("notification integration mail") && text.contains("refused"), "{failing:#}");
    // The run itself is recorded as it was: failed for its own reason, not the mail's.
    let runs = t.daemon.cli_json(&["run", "list"]);
    assert_eq!(runs[0]["state"], "failed", "{runs:#}");
}

#[test]
fn mail_goes_over_implicit_tls_and_plain_smtp_too() {
    let smtp = crate::support::services::smtp();
    let t = Setup::new();
    let tag = format!("i{}", std::process::id());
    let to = format!("tls-{tag}@example.org");
    let (tls_port, plain_port) = (smtp.tls_port.to_string(), smtp.port.to_string());
    let add = |name: &str, port: &str, security: &str| {
        let mut args = vec!["notify", "add", name, "--type", "email", "--from", "hindsight@example.org", "--to", &to];
        args.extend(["--host", &smtp.host, "--port", port, "--security", security, "--verify-tls", "false"]);
        t.daemon.cli_json(&args);
    };
    add("implicit", &tls_port, "tls");
    add("plain", &plain_port, "none");
    for name in ["implicit", "plain"] {
        let out = t.daemon.cli_ok(&["notify", "test", name]);
        assert!(out.stdout.contains("SMTP 250"), "{out}");
    }
    let mails = wait_until("both test mails", PROMPTLY, || {
        let m = mails_to(&smtp.maildir, &tag);
        (m.len() >= 2).then_some(m)
    });
    assert!(mails.iter().all(|m| m.contains("test message of notification integration")), "{mails:?}");
    // Implicit TLS spoken to the plain port fails with the reason, quickly.
    t.daemon.cli_json(&["notify", "edit", "plain", "--security", "tls", "--timeout", "5"]);
    let refused = t.daemon.cli(["notify", "test", "plain"]);
    assert_eq!(refused.code, 7, "a test the server refused: {refused}");
    assert!(refused.stderr.contains("notification integration plain: SMTP"), "{refused}");
}
