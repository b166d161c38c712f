//! The scheduler against a real catalog, driven by a fake clock: due times
//! fire, downtime gives one catch-up run, daylight saving neither skips nor
//! doubles a run, one run serves several schedules, `after:` follows its job.
//!
//! No dispatcher runs here: queued runs are marked completed by the test, as
//! the runner would.

use std::sync::{Arc, Mutex};

use hindsight_agent::catalog::{Catalog, RunUpdate};
use hindsight_agent::jobs::after_run;
use hindsight_agent::model::{
    AlertKind, DestinationId, DestinationKind, DestinationRecord, Job, Run, RunId, RunState, ScheduleInput, Trigger,
};
use hindsight_agent::runner::Runner;
use hindsight_agent::schedule::Clock;
use hindsight_agent::scheduler::Scheduler;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// A clock the test sets.
struct FakeClock(Mutex<Timestamp>);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("clock")
    }
}

struct World {
    catalog: Arc<Catalog>,
    clock: Arc<FakeClock>,
    scheduler: Arc<Scheduler>,
    _dir: tempfile::TempDir,
}

/// A New York local time (the earlier one in a fold).
fn ny(s: &str) -> Timestamp {
    let dt: jiff::civil::DateTime = s.parse().expect("a civil datetime");
    TimeZone::get("America/New_York").expect("tz").to_ambiguous_timestamp(dt).earlier().expect("valid")
}

fn show(t: Timestamp) -> String {
    t.to_zoned(TimeZone::get("America/New_York").expect("tz")).strftime("%Y-%m-%dT%H:%M%:z").to_string()
}

impl World {
    fn new(start: Timestamp) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = Arc::new(Catalog::open(&dir.path().join("catalog.sqlite")).expect("catalog"));
        catalog.set_setting("timezone", "America/New_York").expect("setting");
        catalog
            .insert_destination(&DestinationRecord {
                id: DestinationId("dest-1".into()),
                name: "d1".into(),
                kind: DestinationKind::Local,
                options: serde_json::json!({"path": dir.path().join("dest")}).as_object().cloned().expect("options"),
                disk_limit: 0,
                hidden: false,
                readonly: false,
                disabled: false,
                jobs: 0,
                disk_usage: None,
                cache_id: "6a1f2a3c-0000-4000-8000-000000000001".into(),
                check: Default::default(),
            })
            .expect("destination");
        let clock = Arc::new(FakeClock(Mutex::new(start)));
        let runner = Runner::new(
            catalog.clone(),
            Some(1),
            Vec::new(),
            std::env::temp_dir().join("hindsight-state"),
            clock.clone(),
            &hindsight_agent::shutdown::Shutdown::new(),
        );
        let scheduler = Scheduler::new(catalog.clone(), runner, clock.clone());
        World { catalog, clock, scheduler, _dir: dir }
    }

    fn set(&self, t: Timestamp) {
        *self.clock.0.lock().expect("clock") = t;
    }

    fn add_job(&self, name: &str, time: &str, schedules: &[(&str, i64)]) -> Job {
        let new = hindsight_agent::model::NewJob {
            schedules: schedules.iter().map(|(s, r)| ScheduleInput { spec: s.to_string(), retain: *r }).collect(),
            time: Some(time.into()),
            ..hindsight_agent::model::NewJob::directories(name, vec!["/".into()], vec!["d1".into()])
        };
        let job = hindsight_agent::jobs::build(new).expect("valid job");
        hindsight_agent::jobs::check_dependencies(&self.catalog, &job.name, &job.schedules).expect("dependencies");
        self.catalog.insert_job(&job).expect("insert");
        self.scheduler.replan_job(name).expect("replan");
        self.catalog.job(name).expect("job")
    }

    /// Ticks; every run it queued is then completed (as the runner would).
    fn tick(&self) -> Vec<Run> {
        let ids = self.scheduler.tick().expect("tick");
        let runs: Vec<Run> = ids.iter().map(|id| self.catalog.run(*id).expect("run")).collect();
        for r in &runs {
            self.complete(r.id);
        }
        runs
    }

    /// Starts and completes a queued run, as the runner would (its end time is the real clock's).
    fn complete(&self, run: RunId) {
        self.catalog.start_run(run).expect("start");
        let done = RunUpdate {
            state: RunState::Completed,
            message: None,
            stats: Default::default(),
            destinations: Vec::new(),
            errors: Vec::new(),
            hooks: Vec::new(),
        };
        self.catalog.update_run(run, &done).expect("complete");
    }

    /// Moves the clock from `from` to `to` in `step`s, ticking at each;
    /// returns the New York times at which runs were queued, with their tags.
    fn sweep(&self, from: Timestamp, to: Timestamp, step: SignedDuration) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            self.set(t);
            for r in self.tick() {
                out.push((show(t), r.tags));
            }
            t = t.checked_add(step).expect("time");
        }
        out
    }

    fn next_run(&self, job: &str) -> String {
        show(self.catalog.job(job).expect("job").next_run.expect("a next run"))
    }
}

fn tags(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_schedule_fires_at_its_time_once() {
    let w = World::new(ny("2026-06-10T01:00"));
    w.add_job("j", "02:00", &[("daily", 7)]);
    assert_eq!(w.next_run("j"), "2026-06-10T02:00-04:00");
    let fired = w.sweep(ny("2026-06-10T01:00"), ny("2026-06-11T01:59"), SignedDuration::from_mins(1));
    assert_eq!(fired, vec![("2026-06-10T02:00-04:00".to_string(), tags(&["daily"]))]);
    let run = &w.catalog.runs(Some("j"), 10).expect("runs")[0];
    assert_eq!(run.trigger, Trigger::Schedule);
    assert_eq!(w.next_run("j"), "2026-06-11T02:00-04:00");
}

#[test]
fn after_downtime_across_two_due_times_one_catch_up_run() {
    let w = World::new(ny("2026-06-10T01:00"));
    w.add_job("j", "02:00", &[("daily", 7), ("hourly:6", 4)]);
    // The agent is down from 01:00 on the 10th to 05:00 on the 12th: two daily
    // due times and eight hourly:6 due times missed.
    w.set(ny("2026-06-12T05:00"));
    let runs = w.tick();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].tags, tags(&["daily", "hourly:6"]));
    assert!(w.tick().is_empty(), "a second tick at the same time queued again");
    let alerts = w.catalog.alerts(false).expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!((alerts[0].kind.as_str(), alerts[0].level.as_str()), ("catch_up", "information"));
    let job = w.catalog.job("j").expect("job");
    let next: Vec<String> = job.schedules.iter().map(|s| show(s.next_run.expect("next"))).collect();
    assert_eq!(next, ["2026-06-13T02:00-04:00", "2026-06-12T08:00-04:00"]);
}

#[test]
fn daylight_saving_changes_neither_skip_nor_double_a_run() {
    let w = World::new(ny("2026-03-07T00:00"));
    w.add_job("spring", "02:30", &[("daily", 7)]);
    w.add_job("fall", "01:30", &[("daily", 7)]);
    w.add_job("hourly", "00:00", &[("hourly", 24)]);
    let step = SignedDuration::from_mins(5);
    let fired = w.sweep(ny("2026-03-07T00:00"), ny("2026-03-09T23:59"), step);
    let of = |job_tag: &str, fired: &[(String, Vec<String>)]| -> Vec<String> {
        fired.iter().filter(|(_, t)| t.iter().any(|x| x == job_tag)).map(|(at, _)| at.clone()).collect()
    };
    let daily: Vec<String> = of("daily", &fired);
    // spring (02:30) and fall (01:30) each once a day; 02:30 does not exist on
    // the 8th and runs at 03:00.
    assert_eq!(
        daily,
        [
            "2026-03-07T01:30-05:00",
            "2026-03-07T02:30-05:00",
            "2026-03-08T01:30-05:00",
            "2026-03-08T03:00-04:00",
            "2026-03-09T01:30-04:00",
            "2026-03-09T02:30-04:00"
        ]
    );
    // Hourly: 23 runs on the 7th (added at 00:00, first due 01:00), 23 on the
    // short 8th, 24 on the 9th.
    assert_eq!(of("hourly:1", &fired).len(), 23 + 23 + 24);

    let w = World::new(ny("2026-10-31T00:00"));
    w.add_job("fall", "01:30", &[("daily", 7)]);
    w.add_job("hourly", "00:00", &[("hourly", 24)]);
    let fired = w.sweep(ny("2026-10-31T00:00"), ny("2026-11-02T23:59"), step);
    assert_eq!(
        of("daily", &fired),
        ["2026-10-31T01:30-04:00", "2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"],
        "01:30 happens twice on Nov 1st and runs once"
    );
    // 25 runs on the long 1st of November.
    assert_eq!(of("hourly:1", &fired).len(), 23 + 25 + 24);
}

#[test]
fn one_run_serves_the_daily_and_the_weekly_due_at_once() {
    // 2026-06-14 is a Sunday.
    let w = World::new(ny("2026-06-12T12:00"));
    w.add_job("j", "02:00", &[("daily", 7), ("weekly:sun", 4)]);
    let fired = w.sweep(ny("2026-06-12T12:00"), ny("2026-06-15T12:00"), SignedDuration::from_mins(10));
    assert_eq!(
        fired,
        vec![
            ("2026-06-13T02:00-04:00".to_string(), tags(&["daily"])),
            ("2026-06-14T02:00-04:00".to_string(), tags(&["daily", "weekly:sun"])),
            ("2026-06-15T02:00-04:00".to_string(), tags(&["daily"])),
        ]
    );
}

#[test]
fn a_due_schedule_joins_the_jobs_queued_run() {
    let w = World::new(ny("2026-06-10T01:00"));
    let job = w.add_job("j", "02:00", &[("daily", 7)]);
    let queued = w.catalog.queue_run(job.id, "j", Trigger::Manual, &tags(&["manual"])).expect("queue");
    w.set(ny("2026-06-10T02:00"));
    let ids = w.scheduler.tick().expect("tick");
    assert_eq!(ids, vec![queued]);
    let run = w.catalog.run(queued).expect("run");
    assert_eq!(run.tags, tags(&["manual", "daily"]));
    assert_eq!(run.trigger, Trigger::Schedule);
}

#[test]
fn after_schedules_follow_the_other_jobs_snapshot() {
    let w = World::new(ny("2026-06-10T01:00"));
    w.add_job("db", "02:00", &[("daily", 7)]);
    w.add_job("files", "00:00", &[("after:db+2h", 7)]);
    assert_eq!(w.catalog.job("files").expect("job").next_run, None);
    after_run(&w.catalog, "db", ny("2026-06-10T02:10")).expect("after_run");
    assert_eq!(w.next_run("files"), "2026-06-10T04:10-04:00");
    w.set(ny("2026-06-10T04:09"));
    assert!(w.tick().iter().all(|r| r.job != "files"));
    w.set(ny("2026-06-10T04:10"));
    let runs = w.tick();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].job.as_str(), runs[0].tags.clone()), ("files", tags(&["after:db+2h"])));
    assert_eq!(w.catalog.job("files").expect("job").next_run, None, "waits for db's next run again");
}

#[test]
fn after_cycles_and_unknown_jobs_are_refused() {
    let w = World::new(ny("2026-06-10T01:00"));
    w.add_job("a", "02:00", &[("daily", 3)]);
    w.add_job("b", "02:00", &[("after:a", 3)]);
    let check = |job: &str, spec: &str| {
        let s =
            hindsight_agent::jobs::check_schedules(&[ScheduleInput { spec: spec.into(), retain: 3 }]).expect("spec");
        hindsight_agent::jobs::check_dependencies(&w.catalog, job, &s).map_err(|e| e.message)
    };
    let e = check("a", "after:b").expect_err("a -> b -> a");
    assert!(e.contains("cycle") && e.contains("a -> b -> a"), "{e}");
    assert!(check("a", "after:a").expect_err("self").contains("cycle"));
    assert!(check("a", "after:nope").expect_err("unknown").contains("no existing job"));
    assert_eq!(check("c", "after:b"), Ok(()));
}

#[test]
fn monitors_raise_one_alert_per_condition_and_old_history_is_pruned() {
    let real_now = Timestamp::now();
    let w = World::new(real_now);
    let job = hindsight_agent::jobs::build(hindsight_agent::model::NewJob {
        monitor: Some(hindsight_agent::model::Monitor { notran: Some("2".into()), ranfor: Some("12h".into()) }),
        ..hindsight_agent::model::NewJob::directories("watched", vec!["/".into()], vec!["d1".into()])
    })
    .expect("job");
    assert_eq!(job.monitor.notran.as_deref(), Some("2d"));
    let job = w.catalog.insert_job(&job).expect("insert");
    let mut full = w.catalog.destination("d1").expect("d1");
    full.id = DestinationId("dest-2".into());
    full.name = "full".into();
    full.disk_limit = 90;
    w.catalog.insert_destination(&full).expect("insert");
    let usage =
        |pct: u64| hindsight_agent::model::DiskUsageInfo { usage: pct, free: 100 - pct, total: 100, updated: real_now };
    w.catalog.set_disk_usage(&DestinationId("dest-2".into()), &usage(95)).expect("usage");
    let run = w.catalog.queue_run(job.id, "watched", Trigger::Manual, &tags(&["manual"])).expect("queue");
    w.catalog.start_run(run).expect("start");

    let kinds = |w: &World| -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = w
            .catalog
            .alerts(false)
            .expect("alerts")
            .into_iter()
            .map(|a| (a.kind.as_str().to_string(), a.subject, a.level.as_str().to_string()))
            .collect();
        v.sort();
        v
    };
    // Now: only the full destination.
    w.scheduler.tick().expect("tick");
    assert_eq!(kinds(&w), [("disk_limit".into(), "full".into(), "warning".into())]);
    // 13 hours on: the run has gone on for longer than 12h.
    w.set(real_now + SignedDuration::from_hours(13));
    w.scheduler.tick().expect("tick");
    w.scheduler.tick().expect("tick");
    let run_subject = format!("run {run}");
    assert_eq!(
        kinds(&w),
        [
            ("disk_limit".into(), "full".into(), "warning".into()),
            ("ranfor".into(), run_subject.clone(), "warning".into())
        ]
    );
    // 49 hours on: no backup completed for more than 2 days.
    w.set(real_now + SignedDuration::from_hours(49));
    w.scheduler.tick().expect("tick");
    assert_eq!(kinds(&w).len(), 3, "{:?}", kinds(&w));
    assert!(kinds(&w).contains(&("notran".into(), "watched".into(), "warning".into())));

    // The run ends; 31 days later (logs_ttl 30) it is forgotten, and so are
    // acknowledged alerts after alerts_ttl (60 days).
    let done = RunUpdate {
        state: RunState::Failed,
        message: None,
        stats: Default::default(),
        destinations: Vec::new(),
        errors: Vec::new(),
        hooks: Vec::new(),
    };
    w.catalog.update_run(run, &done).expect("end");
    for a in w.catalog.alerts(false).expect("alerts") {
        w.catalog.ack_alert(a.id).expect("ack");
    }
    w.catalog.set_disk_usage(&DestinationId("dest-2".into()), &usage(10)).expect("usage");
    w.catalog
        .update_job(&{
            let mut j = w.catalog.job("watched").expect("job");
            j.monitor = Default::default();
            j
        })
        .expect("monitors off");
    w.set(real_now + SignedDuration::from_hours(31 * 24));
    w.scheduler.tick().expect("tick");
    assert!(w.catalog.runs(Some("watched"), 10).expect("runs").is_empty(), "the old run was not pruned");
    assert_eq!(w.catalog.alerts(true).expect("alerts").len(), 3);
    w.set(real_now + SignedDuration::from_hours(61 * 24));
    w.scheduler.tick().expect("tick");
    assert_eq!(w.catalog.alerts(true).expect("alerts"), Vec::new());
}

#[test]
fn a_clock_stepped_back_neither_silences_schedules_nor_monitors() {
    // The clock ran a year ahead (a bad RTC) while the job was planned and
    // last succeeded; then it is set right.
    let real_now = Timestamp::now();
    let year = SignedDuration::from_hours(365 * 24);
    let w = World::new(real_now + year);
    w.add_job("j", "02:00", &[("daily", 7)]);
    let ahead = w.tick();
    assert!(ahead.is_empty());
    let planned: Timestamp = w.catalog.job("j").expect("job").schedules[0].next_run.expect("next run");
    assert!(planned > real_now + year - SignedDuration::from_hours(1), "planned at {planned}");
    // A completed run, recorded at the real time: in the past of the wrong clock.
    let run = w
        .catalog
        .queue_run(w.catalog.job("j").expect("job").id, "j", Trigger::Manual, &tags(&["manual"]))
        .expect("queue");
    w.complete(run);

    // The clock steps back a year, to an hour after the job's last success.
    let back = real_now - SignedDuration::from_hours(1);
    w.set(back);
    w.tick();
    let alerts = w.catalog.alerts(false).expect("alerts");
    let step = alerts
        .iter()
        .find(|a| a.kind == AlertKind::ClockStep)
        .unwrap_or_else(|| panic!("no clock_step alert: {alerts:#?}"));
    assert_eq!(step.level.as_str(), "warning");
    assert!(step.message.contains("stepped back by"), "{}", step.message);
    // The schedule was planned again from the real time: it fires within a day.
    let fired = w.sweep(back, back + SignedDuration::from_hours(25), SignedDuration::from_mins(10));
    assert_eq!(fired.len(), 1, "a daily schedule after the clock stepped back: {fired:?}");

    // notran: the last success is "in the future" of the corrected clock
    // (it was recorded at real time, an hour ahead of `back`): the monitor
    // counts from when it saw that, and fires after its 2 days.
    let success = w.catalog.last_success("j").expect("last success").expect("a success");
    assert!(success > back + SignedDuration::from_mins(30));
    let quiet = |w: &World| !w.catalog.alerts(false).expect("alerts").iter().any(|a| a.kind == AlertKind::Notran);
    // Runs queued by the sweep completed with real times; make the last
    // success lie a week ahead of the clock instead, then watch.
    w.catalog
        .update_job(&{
            let mut j = w.catalog.job("j").expect("job");
            j.monitor.notran = Some("2d".into());
            j
        })
        .expect("monitor");
    w.set(back - SignedDuration::from_hours(7 * 24));
    w.scheduler.tick().expect("tick");
    assert!(quiet(&w), "notran fired at once: {:#?}", w.catalog.alerts(false));
    w.set(back - SignedDuration::from_hours(7 * 24) + SignedDuration::from_hours(49));
    w.scheduler.tick().expect("tick");
    assert!(!quiet(&w), "notran stayed blind while the last success was in the clock's future");
}
