//! `run_ttl_hours`: a run that goes on for longer is stopped cleanly and
//! recorded as failed, with an alert. The runner's clock jumps two hours
//! right after the run starts, so the first progress check finds it expired.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hindsight_agent::catalog::Catalog;
use hindsight_agent::model::{AlertKind, DestinationKind, NewDestination, NewJob, RunState};
use hindsight_agent::runner::Runner;
use hindsight_agent::schedule::Clock;
use hindsight_agent::shutdown::Shutdown;
use jiff::{SignedDuration, Timestamp};

/// The real time at the first reading (the run's start), two hours later after.
struct JumpingClock {
    start: Timestamp,
    calls: AtomicUsize,
}

impl Clock for JumpingClock {
    fn now(&self) -> Timestamp {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.start
        } else {
            self.start + SignedDuration::from_hours(2)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_run_ttl_hours_is_stopped_and_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    for i in 0..6000 {
        let d = src.join(format!("d{}", i % 40));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(format!("f{i}")), vec![b'x'; 4096]).expect("write");
    }
    let catalog = Arc::new(Catalog::open(&dir.path().join("catalog.sqlite")).expect("catalog"));
    catalog.set_setting("run_ttl_hours", "1").expect("setting");
    let options = serde_json::json!({"path": dir.path().join("dest")}).as_object().cloned().expect("options");
    let new = NewDestination {
        name: "d1".into(),
        kind: DestinationKind::Local,
        options,
        disk_limit: None,
        hidden: false,
        readonly: false,
        disabled: false,
        force: false,
        writable: false,
        check_schedule: None,
        check_time: None,
        check_read_data: None,
    };
    let (dest, _) = hindsight_agent::destinations::create(catalog.master_key(), new).expect("destination");
    catalog.insert_destination(&dest).expect("insert destination");
    let job = hindsight_agent::jobs::build(NewJob::directories(
        "j",
        vec![src.to_string_lossy().into_owned()],
        vec!["d1".into()],
    ))
    .expect("job");
    let job = catalog.insert_job(&job).expect("insert job");

    let clock = Arc::new(JumpingClock { start: Timestamp::now(), calls: AtomicUsize::new(0) });
    let shutdown = Shutdown::new();
    let cache = std::env::temp_dir().join("hindsight-state");
    let runner = Runner::new(catalog.clone(), None, Vec::new(), cache, clock, &shutdown);
    let run = runner.queue(&job).expect("queue");
    shutdown.spawn(runner.clone().dispatch_loop());
    let ended = runner.wait(run.id, Duration::from_secs(60)).await.expect("run");
    assert!(shutdown.stop(Duration::from_secs(10)).await, "the dispatcher or the deleter did not stop");

    assert_eq!(ended.state, RunState::Failed, "{ended:#?}");
    let message = ended.message.clone().unwrap_or_default();
    assert!(message.contains("run_ttl_hours (1 h)"), "{message}");
    assert!(catalog.snapshots(Some("j"), None).expect("snapshots").is_empty(), "a stopped run made a snapshot");
    let alerts = catalog.alerts(false).expect("alerts");
    assert!(alerts.iter().any(|a| a.kind == AlertKind::RunFailed && a.subject == "j"), "{alerts:#?}");
}
