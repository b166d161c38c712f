//! The CLI's own documentation for installs without the package: shell
//! completions that load and complete, and a manual page that renders.

use std::process::Command;

use crate::support::hindsight_bin;

fn hindsight(args: &[&str]) -> std::process::Output {
    Command::new(hindsight_bin()).args(args).output().expect("run hindsight")
}

#[test]
fn bash_completion_loads_and_completes_subcommands() {
    let bin = hindsight_bin();
    let script = format!(
        "source <('{}' completions bash) && complete -p hindsight && \
         COMP_WORDS=(hindsight no) COMP_CWORD=1 && _hindsight hindsight no hindsight && echo \"${{COMPREPLY[@]}}\"",
        bin.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("-F _hindsight hindsight"), "{text}");
    assert_eq!(text.lines().last(), Some("notify"), "{text}");
    for shell in ["zsh", "fish"] {
        let out = hindsight(&["completions", shell]);
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("notify"), "{shell}");
    }
    let bad = hindsight(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use bash, zsh or fish"));
}

/// `page` rendered by `man -l -` at 80 columns.
fn rendered(page: &[u8]) -> String {
    let mut man = Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("man");
    std::io::Write::write_all(&mut man.stdin.take().expect("stdin"), page).expect("feed man");
    let out = man.wait_with_output().expect("man output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn the_manual_pages_render() {
    let page = hindsight(&["man"]);
    assert!(page.status.success());
    let text = rendered(&page.stdout);
    for want in ["NAME", "SYNOPSIS", "SUBCOMMANDS", "hindsight-notify(1)", "hindsight-database(1)"] {
        assert!(text.contains(want), "{want} missing from the rendered page:\n{text}");
    }
    let daemon = Command::new(crate::support::hindsightd_bin()).arg("--man").output().expect("run hindsightd");
    assert!(daemon.status.success());
    let text = rendered(&daemon.stdout);
    for want in ["hindsightd(8)", "--state-dir", "--metrics-listen", "--no-mount"] {
        assert!(text.contains(want), "{want} missing from hindsightd(8):\n{text}");
    }
}
