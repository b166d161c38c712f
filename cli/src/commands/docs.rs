//! `hindsight completions SHELL` and `hindsight man`: the shell completions
//! and the manual page, generated from the same definitions as the parser, for
//! installs without the package.

use std::process::ExitCode;

use anyhow::bail;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::Cli;

/// Prints the completion script of `shell`.
pub fn completions(shell: &str) -> anyhow::Result<ExitCode> {
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => bail!("unknown shell {other:?}; use bash, zsh or fish"),
    };
    // Into memory first: the generator panics on a write error (`| head`).
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hindsight", &mut out);
    print(&out)
}

/// Prints hindsight(1) in roff.
pub fn man() -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    print(&out)
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes).and_then(|()| std::io::stdout().flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
