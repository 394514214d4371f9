//! The review's reading of an upper layer: `data` describes a tree (one
//! entry per line: `d NAME`, `f NAME`, `l NAME TARGET`, `p NAME` for a
//! FIFO), made in a scratch directory, then collected against an empty
//! host directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let root = std::env::temp_dir().join(format!("cage-fuzz-upper-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (upper, host) = (root.join("upper"), root.join("host"));
    if std::fs::create_dir_all(&upper).is_err() || std::fs::create_dir_all(&host).is_err() {
        return;
    }
    for line in String::from_utf8_lossy(data).lines().take(64) {
        let mut f = line.splitn(3, ' ');
        let (kind, name) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        if name.is_empty() || name.contains("..") || name.starts_with('/') {
            continue;
        }
        let path = upper.join(name);
        let _ = match kind {
            "d" => std::fs::create_dir_all(&path),
            "f" => std::fs::write(&path, b"x"),
            "l" => std::os::unix::fs::symlink(f.next().unwrap_or("."), &path),
            _ => Ok(()),
        };
    }
    let _ = cage::session::changes::collect(&upper, &host, &[".git/hooks".to_string()]);
    let _ = std::fs::remove_dir_all(&root);
});
