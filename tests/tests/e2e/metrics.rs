//! The Prometheus exporter, scraped for real: the exposition text parses,
//! and it follows what the agent does.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use crate::support::daemon::run_to_exit;
use crate::support::{Daemon, Sandbox, fixture};

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// `GET /metrics`: the status line and the body.
fn scrape(port: u16) -> (String, String) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    write!(c, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("send the scrape");
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("read the scrape");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// Samples by `name{labels}` as written, after checking the whole text is
/// well formed: every sample of a family declared by a TYPE line before it,
/// every value a number, labels only from the set the README lists.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut typed = Vec::new();
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            typed.push(parts.next().unwrap_or_default().to_string());
            assert!(matches!(parts.next(), Some("gauge" | "counter")), "{line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = series.split('{').next().unwrap_or_default();
        assert!(typed.iter().any(|t| t == name), "{name} has no TYPE line before it");
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        if let Some(labels) = series.split_once('{').map(|(_, l)| l.trim_end_matches('}')) {
            for pair in labels.split(',') {
                let key = pair.split('=').next().unwrap_or_default();
                assert!(["job", "destination", "level", "state", "version"].contains(&key), "label {key} in {line}");
                assert!(!pair.contains('/'), "a path in a label: {line}");
            }
        }
        out.insert(series.to_string(), v);
    }
    out
}

#[test]
fn metrics_are_served_in_the_exposition_format_and_follow_a_completed_run() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fixture::small_tree(&src);
    let port = free_port();
    let mut opts = sb.daemon_opts();
    opts.args = vec!["--metrics-listen".into(), format!("127.0.0.1:{port}")];
    let daemon = Daemon::start(opts);
    daemon.add_destination("d", &sb.path().join("dest"), &["--disk-limit", "90"]);
    daemon.add_job("job", &[&src], &["d"], &[]);

    let (status, body) = scrape(port);
    assert!(status.contains(" 200 "), "{status}");
    let m = parse(&body);
    assert_eq!(
        m.get(&format!("hindsight_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))),
        Some(&1.0),
        "{body}"
    );
    assert_eq!(m.get("hindsight_runs_queued"), Some(&0.0), "{body}");
    assert_eq!(m.get("hindsight_alerts_open{level=\"critical\"}"), Some(&0.0), "{body}");
    assert_eq!(m.get("hindsight_job_enabled{job=\"job\"}"), Some(&1.0), "{body}");
    assert!(!body.contains("hindsight_job_last_run_state{"), "a run before any ran:\n{body}");

    let run = daemon.run_job_wait("job");
    let m = parse(&scrape(port).1);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in the scrape: {m:#?}"));
    assert_eq!(get("hindsight_job_last_run_state{job=\"job\",state=\"completed\"}"), 1.0);
    assert_eq!(get("hindsight_job_last_run_state{job=\"job\",state=\"failed\"}"), 0.0);
    assert_eq!(
        get("hindsight_job_last_run_files_scanned{job=\"job\"}"),
        run["stats"]["files_scanned"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(
        get("hindsight_job_last_run_bytes_added{job=\"job\"}"),
        run["stats"]["bytes_copied"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(get("hindsight_snapshots{job=\"job\",destination=\"d\"}"), 1.0);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let success = get("hindsight_last_success_timestamp_seconds{job=\"job\",destination=\"d\"}");
    assert!((now - success).abs() < 120.0, "last success {success}, now {now}");
    assert!(get("hindsight_job_last_run_end_timestamp_seconds{job=\"job\"}") >= success - 1.0);
    assert_eq!(get("hindsight_destination_disk_limit_ratio{destination=\"d\"}"), 0.9);
    assert!(get("hindsight_destination_used_bytes{destination=\"d\"}") > 0.0);
}

#[test]
fn a_metrics_address_already_in_use_stops_the_agent_with_the_reason() {
    let sb = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address");
    let mut opts = sb.daemon_opts();
    opts.args = vec!["--metrics-listen".into(), addr.to_string()];
    let (status, log) = run_to_exit(&opts);
    assert!(!status.success(), "{log}");
    assert!(log.contains(&format!("listening for metrics scrapes on {addr} (--metrics-listen)")), "{log}");
    assert!(log.contains("in use"), "{log}");
}
