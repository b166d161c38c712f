//! What GNU tar on an ssh server says while it extracts a snapshot's stream:
//! its warnings apart from its errors, and each complaint about a file
//! matched to that file's path.
//!
//! GNU tar writes `tar: NAME: MESSAGE` about a member, with NAME in its
//! `escape` quoting style and colons escaped too (`quotearg_colon`), so the
//! first unescaped `": "` ends the name, whatever bytes the name holds
//! (newlines, backslashes, bytes that are not UTF-8). Its exit status says
//! what the lines mean: 0, they are warnings (the tree is whole); 2, some
//! members could not be restored, and the complaints name them.

/// One line of tar's stderr.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TarLine {
    /// A complaint about a member under the stream's tree: the source path
    /// (absolute, bytes) and what tar said.
    File(Vec<u8>, String),
    /// Anything else (a general warning or error).
    Other(String),
}

/// Reads tar's stderr; `tree` is the prefix of every member name
/// (`.partial-<name>/tree/`), whose removal leaves the source path without
/// its leading `/`. Empty lines and tar's closing summary are left out.
pub(crate) fn parse(stderr: &[u8], tree: &[u8]) -> Vec<TarLine> {
    stderr
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        // Only tar's own summary line: a file may be named anything.
        .filter(|l| !l.is_empty() && *l != b"tar: Exiting with failure status due to previous errors")
        .map(|l| match member_complaint(l) {
            Some((name, message)) => match name.strip_prefix(tree) {
                Some(rel) => TarLine::File([b"/", rel].concat(), message),
                None => TarLine::Other(String::from_utf8_lossy(l).into_owned()),
            },
            None => TarLine::Other(String::from_utf8_lossy(l).into_owned()),
        })
        .collect()
}

/// `tar: NAME: MESSAGE` split into the unquoted NAME and MESSAGE.
fn member_complaint(line: &[u8]) -> Option<(Vec<u8>, String)> {
    let rest = line.strip_prefix(b"tar: ")?;
    let mut i = 0;
    while i + 1 < rest.len() {
        match rest[i] {
            // An escape: the next byte is never the separator's colon.
            b'\\' => i += 2,
            b':' if rest[i + 1] == b' ' => {
                let name = unescape(&rest[..i])?;
                return Some((name, String::from_utf8_lossy(&rest[i + 2..]).into_owned()));
            }
            _ => i += 1,
        }
    }
    None
}

/// Undoes GNU's `escape` quoting: `\ooo` octal bytes, C escapes, and a
/// backslash before any other byte (a colon, a backslash) standing for it.
fn unescape(quoted: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(quoted.len());
    let mut i = 0;
    while i < quoted.len() {
        if quoted[i] != b'\\' {
            out.push(quoted[i]);
            i += 1;
            continue;
        }
        let c = *quoted.get(i + 1)?;
        i += 2;
        let byte = match c {
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match quoted.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                u8::try_from(v).ok()?
            }
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            other => other,
        };
        out.push(byte);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &[u8] = b".partial-2026-12-07T100000Z/tree/";

    #[test]
    fn complaints_name_their_files_whatever_the_bytes() {
        let stderr = b"tar: .partial-2026-12-07T100000Z/tree/srv/a\\:b: Cannot open: Permission denied\n\
tar: .partial-2026-12-07T100000Z/tree/srv/caf\\351 \\\\x\\nline: Cannot utime: Operation not permitted\n\
tar: Ignoring unknown extended header keyword 'hdrcharset'\n\
tar: Exiting with failure status due to previous errors\n\n";
        assert_eq!(
            parse(stderr, TREE),
            vec![
                TarLine::File(b"/srv/a:b".to_vec(), "Cannot open: Permission denied".into()),
                TarLine::File(b"/srv/caf\xe9 \\x\nline".to_vec(), "Cannot utime: Operation not permitted".into()),
                TarLine::Other("tar: Ignoring unknown extended header keyword 'hdrcharset'".into()),
            ]
        );
    }

    #[test]
    fn lines_that_are_not_about_the_tree_stay_whole() {
        assert_eq!(
            parse(b"tar: elsewhere/x: Cannot open: No such file\nsh: 1: tar: not found\n", TREE),
            vec![
                TarLine::Other("tar: elsewhere/x: Cannot open: No such file".into()),
                TarLine::Other("sh: 1: tar: not found".into()),
            ]
        );
        // A dangling escape or an octal value over a byte is no name.
        assert_eq!(member_complaint(b"tar: x\\"), None);
        assert_eq!(unescape(b"\\777"), None);
        assert_eq!(unescape(b"\\101\\q"), Some(b"Aq".to_vec()));
    }
}
