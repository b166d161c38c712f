//! File history from the indexes: `versions`, `find` and `diff` against
//! expectations computed by hand from the changes made between snapshots.

use serde_json::Value;

use crate::support::{JOB, Setup, Snap, fixture, s};

fn names(v: &Value) -> Vec<String> {
    v.as_array().expect("array of snapshots").iter().map(|s| s["name"].as_str().expect("name").to_string()).collect()
}

#[test]
fn versions_find_and_diff_answer_from_the_indexes() {
    let t = Setup::new(|src| {
        fixture::write(&src.join("f.txt"), b"original\n");
        fixture::write(&src.join("a.log"), b"log a\n");
        fixture::write(&src.join("keep.txt"), b"never changes\n");
    });
    let f = t.src.join("f.txt");
    let mut snaps: Vec<Snap> = Vec::new();
    // 1: original. 2: f changes. 3: only f's mtime changes (same content).
    // 4: f changes, a.log goes, keep.txt's mode changes. 5: f changes, sub/b.log comes. 6: nothing.
    snaps.push(t.daemon.backup(JOB));
    fixture::write(&f, b"second version\n");
    snaps.push(t.daemon.backup(JOB));
    fixture::set_mtime(&f, 1_000_000_000_000_000_000);
    snaps.push(t.daemon.backup(JOB));
    fixture::write(&f, b"third version!\n");
    std::fs::remove_file(t.src.join("a.log")).expect("rm a.log");
    fixture::chmod(&t.src.join("keep.txt"), 0o600);
    snaps.push(t.daemon.backup(JOB));
    fixture::write(&f, b"fourth\n");
    fixture::mkdir(&t.src.join("sub"));
    fixture::write(&t.src.join("sub/b.log"), b"log b\n");
    snaps.push(t.daemon.backup(JOB));
    snaps.push(t.daemon.backup(JOB));
    let name = |i: usize| snaps[i - 1].name.clone();

    // versions: the original and 3 changes; the mtime-only change is no new version.
    let v = t.daemon.cli_json(&["versions", s(&f)]);
    let versions = v.as_array().expect("array");
    assert_eq!(versions.len(), 4, "{v:#}");
    let spans: Vec<Vec<String>> = versions.iter().map(|x| names(&x["snapshots"])).collect();
    assert_eq!(spans, [vec![name(6), name(5)], vec![name(4)], vec![name(3), name(2)], vec![name(1)]]);
    let b3 = |bytes: &[u8]| blake3::hash(bytes).to_hex().to_string();
    assert_eq!(versions[0]["state"]["blake3"], b3(b"fourth\n"));
    assert_eq!(versions[3]["state"]["blake3"], b3(b"original\n"));
    assert_eq!(versions[3]["state"]["size"], 9);
    let text = t.daemon.cli_ok(&["versions", s(&f)]);
    assert!(text.stdout.contains(&b3(b"original\n")[..12]), "{text}");
    // A directory's versions follow its listing.
    let dir = t.daemon.cli_json(&["versions", s(&t.src)]);
    assert_eq!(dir.as_array().map(Vec::len), Some(3), "listing: {{f,a.log,keep}}, {{f,keep}}, {{f,keep,sub}}: {dir:#}");

    // find on names, then on whole paths.
    let found = t.daemon.cli_json(&["find", "*.log"]);
    let got: Vec<(String, Vec<String>)> = found
        .as_array()
        .expect("array")
        .iter()
        .map(|m| (m["path"].as_str().expect("path").to_string(), names(&m["snapshots"])))
        .collect();
    let want = vec![
        (format!("{}/a.log", s(&t.src)), vec![name(3), name(2), name(1)]),
        (format!("{}/sub/b.log", s(&t.src)), vec![name(6), name(5)]),
    ];
    assert_eq!(got, want);
    let on_path = t.daemon.cli_json(&["find", &format!("{}/*/*.log", s(&t.src))]);
    assert_eq!(on_path.as_array().map(Vec::len), Some(1), "only sub/b.log is one level down: {on_path:#}");
    let since = t.daemon.cli_json(&["find", "*.log", "--until", "2000-01-01"]);
    assert_eq!(since, Value::Array(Vec::new()), "no snapshot was completed before 2000");

    // diff of 3 and 4: f's content, a.log gone, keep.txt's mode.
    let d = t.daemon.cli_json(&["diff", &snaps[2].id.to_string(), &snaps[3].id.to_string()]);
    let entries: Vec<(String, String, Vec<String>)> = d["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let what = e["what"].as_array().map(|w| w.iter().map(|x| x.as_str().unwrap_or("").to_string()).collect());
            (
                e["path"].as_str().unwrap_or("").to_string(),
                e["change"].as_str().unwrap_or("").to_string(),
                what.unwrap_or_default(),
            )
        })
        .collect();
    let at = |rel: &str| format!("{}/{rel}", s(&t.src));
    let want: Vec<(String, String, Vec<String>)> = vec![
        (at("a.log"), "removed".into(), vec![]),
        // "second version\n" and "third version!\n" have the same size.
        (at("f.txt"), "changed".into(), vec!["content".into(), "mtime".into()]),
        (at("keep.txt"), "changed".into(), vec!["mode".into()]),
    ];
    assert_eq!(entries, want, "a directory's own mtime and size are not reported: {d:#}");
    assert_eq!((d["added"].clone(), d["removed"].clone()), (0.into(), 1.into()));
    let under = t.daemon.cli_json(&["diff", &snaps[3].id.to_string(), &snaps[4].id.to_string(), &at("sub")]);
    let paths: Vec<&str> =
        under["entries"].as_array().expect("entries").iter().filter_map(|e| e["path"].as_str()).collect();
    assert_eq!(paths, [at("sub"), at("sub/b.log")]);
    let same = t.daemon.cli_json(&["diff", &snaps[4].id.to_string(), &snaps[5].id.to_string()]);
    assert_eq!(same["entries"], Value::Array(Vec::new()), "nothing changed: {same:#}");

    // Bad input: clear errors with the usual exit statuses.
    t.daemon.cli(["versions", "etc/passwd"]).assert_error_code(1, &["not an absolute path"]);
    t.daemon.cli(["versions", s(&t.src.join("nope"))]).assert_error_code(5, &["in no snapshot"]);
    t.daemon.cli(["diff", "999999", &snaps[0].id.to_string()]).assert_error_code(5, &["999999"]);
    t.daemon.cli(["find", "[", "--job", JOB]).assert_error_code(1, &["pattern"]);
    t.daemon.cli(["find", "*", "--job", "nojob"]).assert_error_code(5, &["nojob"]);
}
