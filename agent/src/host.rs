//! The machine's name, as manifests and notifications record it.

/// The host name (`uname -n`).
pub(crate) fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}
