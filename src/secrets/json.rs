//! Secrets inside JSON files: the tokens of an agent's login file
//! (`~/.claude/.credentials.json`, `~/.codex/auth.json`), read by an RFC
//! 6901 pointer, and the masked copy the cage sees instead of the file.
//!
//! The file holds real values, so it is handled like one: read into a
//! buffer allocated once at its full size, zeroed on drop, and every
//! string of the parsed document zeroed before the document is dropped
//! (serde_json makes each string one allocation of its exact size when
//! it has no escapes; a value written with escapes is refused for
//! masking, see [`mask`]). The masked copy is the file's own bytes with
//! each value overwritten in place by its placeholder, which has the same
//! length and no character JSON escapes: the rest of the file is
//! byte-for-byte the host's.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::{Zeroize, Zeroizing};

/// A login file larger than this is not one.
const MAX_FILE: u64 = 1 << 20;

/// The whole file, without following a link, into one zeroed-on-drop
/// buffer.
pub fn load(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if meta.len() > MAX_FILE {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    }
    // One more byte than its size: a file that grew meanwhile still fits
    // without the buffer moving (a move would leave an unzeroed copy).
    let mut raw = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    f.take(meta.len() + 1).read_to_end(&mut raw)?;
    Ok(raw)
}

/// The string `pointer` names in the document, `None` when the document
/// is not JSON or the pointer names no string.
pub fn find(raw: &[u8], pointer: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut doc: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let found = doc
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .map(|s| Zeroizing::new(s.as_bytes().to_vec()));
    wipe(&mut doc);
    found
}

/// Whether the file exists and holds a string at `pointer`.
pub fn holds(path: &Path, pointer: &str) -> bool {
    load(path).is_ok_and(|raw| find(&raw, pointer).is_some())
}

/// Overwrites every occurrence of `value` in `raw` with `placeholder` (the
/// same length), then checks the pointer now names the placeholder: a
/// value written with JSON escapes is not found in the raw bytes, and then
/// the file cannot be masked (`Err`).
pub fn mask(
    raw: &mut [u8],
    pointer: &str,
    value: &[u8],
    placeholder: &[u8],
) -> Result<(), &'static str> {
    if value.len() != placeholder.len() || value.is_empty() {
        return Err("its placeholder is not of the value's length");
    }
    let mut at = 0;
    while let Some(i) = raw[at..].windows(value.len()).position(|w| w == value) {
        let start = at + i;
        raw[start..start + value.len()].copy_from_slice(placeholder);
        at = start + value.len();
    }
    match find(raw, pointer) {
        Some(now) if now.as_slice() == placeholder => Ok(()),
        _ => Err("the value is written with JSON escapes, which cage does not rewrite"),
    }
}

/// Zeroes every string of the document, keys aside (names, not values).
fn wipe(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(wipe),
        serde_json::Value::Object(m) => m.values_mut().for_each(wipe),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const FILE: &[u8] = br#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-AAAA","refreshToken":"sk-ant-ort01-BBBB","expiresAt":1,"scopes":["user:inference"]}}"#;

    #[test]
    fn finds_a_string_by_pointer_and_nothing_else() {
        let v = find(FILE, "/claudeAiOauth/accessToken").unwrap();
        assert_eq!(v.as_slice(), b"sk-ant-oat01-AAAA");
        assert!(find(FILE, "/claudeAiOauth/expiresAt").is_none());
        assert!(find(FILE, "/missing").is_none());
        assert!(find(b"not json", "/a").is_none());
    }

    #[test]
    fn masking_changes_only_the_value() {
        let mut raw = FILE.to_vec();
        mask(
            &mut raw,
            "/claudeAiOauth/accessToken",
            b"sk-ant-oat01-AAAA",
            b"sk-ant-oat01-ZZZZ",
        )
        .unwrap();
        let want = String::from_utf8_lossy(FILE).replace("AAAA", "ZZZZ");
        assert_eq!(String::from_utf8_lossy(&raw), want);
    }

    #[test]
    fn an_escaped_value_is_refused() {
        let mut raw = br#"{"t":"ab\/cdefgh"}"#.to_vec();
        assert!(mask(&mut raw, "/t", b"ab/cdefgh", b"xy/zzzzzz").is_err());
    }
}
