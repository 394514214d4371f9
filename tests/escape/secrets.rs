//! Secrets held back (issue 13): the real value of a secret is in no
//! process of the cage. The proxy's swap itself is tested end to end in
//! `tests/network.rs` and `agents.rs`; here, memory.
//!
//! cage init is cloned from the supervisor after the values are read, so
//! its copy-on-write memory would hold whatever the supervisor held then.
//! Two walls: init holds no copy (checked from outside, as root, over its
//! whole memory), and init is unreadable from inside anyway (non-dumpable:
//! the kernel refuses /proc/1/mem and /proc/1/environ).

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::harness::{Cage, poll_until, skip};

/// A value no test prints and no argv holds whole.
const REAL: &str = "sk-real-Mem0ryScanQ2xVb9Lm4Kp8Zr3Tn6Wc1Yd5";

/// Inside the cage: every other process's environ, cmdline and memory,
/// searched for the value (joined from two halves at run time, so this
/// program's text does not hold it), one line per file; then `ready`, and
/// a wait for `go` so the test can look at init from outside meanwhile.
const PROBE: &str = r#"
import os, sys, time
needle = (sys.argv[1] + sys.argv[2]).encode()
def scan(pid, name):
    try:
        if name != "mem":
            data = open(f"/proc/{pid}/{name}", "rb").read()
            return f"read found={data.count(needle)}"
        found = 0
        with open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for line in open(f"/proc/{pid}/maps"):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                try:
                    mem.seek(lo)
                    found += mem.read(hi - lo).count(needle)
                except OSError:
                    pass
        return f"read found={found}"
    except OSError as e:
        return f"refused errno={e.errno}"
me = os.getpid()
for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
    if pid == me:
        continue
    for name in ("environ", "cmdline", "mem"):
        print(f"PROC {pid} {name} {scan(pid, name)}", flush=True)
open("ready", "w").close()
for _ in range(3000):
    if os.path.exists("go"):
        break
    time.sleep(0.01)
print("END", flush=True)
"#;

/// Layer: supervisor memory (`secrets::prepare`, `sys::WipeOnFork`) and
/// init's non-dumpable flag. No process inside can read the value from
/// another, and init, cloned from the supervisor after the value was read,
/// holds no copy of it in any mapping, nor in its environment block.
#[test]
fn no_process_in_the_cage_holds_a_secret_value() {
    require_userns!();
    let cage = Cage::new()
        .host_env("TEST_KEY", REAL)
        // A second variable with the value, passed: it gets the
        // placeholder too, and its host copy is overwritten as well.
        .host_env("COPY_OF_KEY", REAL)
        .args(["--secret", "TEST_KEY@127.0.0.1:9", "--env", "COPY_OF_KEY"]);
    no_process_holds_the_value(&cage);
}

/// Layer: supervisor memory, for a token read from a login file (the
/// claude profile's masked `~/.claude/.credentials.json`): parsing the
/// file leaves no copy behind that init would inherit.
#[test]
fn no_process_in_the_cage_holds_a_login_file_token() {
    require_userns!();
    let login = format!("{{\"claudeAiOauth\":{{\"accessToken\":\"{REAL}\",\"expiresAt\":1}}}}");
    let cage = Cage::new()
        .home_file(".claude/.credentials.json", &login)
        .args(["-p", "claude"]);
    no_process_holds_the_value(&cage);
}

/// The probe's scan inside, and init's memory scanned from outside.
fn no_process_holds_the_value(cage: &Cage) {
    let (k1, k2) = REAL.split_at(12);
    let running = cage.spawn(["python3", "-c", PROBE, k1, k2]);
    let ready = cage.workspace().join("ready");
    let started = poll_until(Duration::from_secs(30), || ready.exists());
    // From outside: init and everything under it, every mapping.
    let mut outside = Vec::new();
    if started {
        // All but the probe, which holds the value it searches for (by
        // name: init's command line is the supervisor's, probe included).
        let probe = |pid: u32| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "python3")
        };
        for pid in descendants(running.pid().as_raw() as u32) {
            if probe(pid) {
                continue;
            }
            for name in ["environ", "cmdline", "mem"] {
                outside.push((pid, name, scan(pid, name)));
            }
        }
    }
    fs::write(cage.workspace().join("go"), "").unwrap();
    let out = running.wait();
    assert!(started, "the probe never got ready: {out}");
    out.assert_success();
    assert!(out.stdout.contains("END"), "{out}");
    out.assert_absent(REAL);
    // Inside: nothing read holds the value, and init's memory and
    // environment are refused by the kernel (it is not dumpable).
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("PROC "))
        .collect();
    assert!(!lines.is_empty(), "{out}");
    for line in &lines {
        assert!(
            !line.contains("found=") || line.ends_with("found=0"),
            "{line}"
        );
    }
    for name in ["environ", "mem"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("PROC 1 {name} refused"))),
            "the agent read init's {name}: {out}"
        );
    }
    // Outside: the value in none of init's mappings.
    if outside.iter().all(|(_, _, r)| r.is_err()) {
        skip(&format!(
            "reading cage init's memory from outside needs root: {outside:?}"
        ));
        return;
    }
    for (pid, name, r) in &outside {
        assert!(
            !matches!(r, Ok(n) if *n > 0),
            "process {pid} of the cage holds the value in its {name}: {outside:?}"
        );
    }
    let init_mem = outside
        .iter()
        .any(|(_, name, r)| *name == "mem" && r.is_ok());
    assert!(init_mem, "no process's memory was scanned: {outside:?}");
}

/// Processes under `root` (the supervisor), by their parent links.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// How many times the value is in `/proc/PID/NAME` (for `mem`: in every
/// readable mapping).
fn scan(pid: u32, name: &str) -> std::io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let proc = Path::new("/proc").join(pid.to_string());
    let count = |data: &[u8]| {
        data.windows(REAL.len())
            .filter(|w| *w == REAL.as_bytes())
            .count()
    };
    if name != "mem" {
        return Ok(count(&fs::read(proc.join(name))?));
    }
    let maps = fs::read_to_string(proc.join("maps"))?;
    let mut mem = fs::File::open(proc.join("mem"))?;
    let mut found = 0;
    for line in maps.lines() {
        let range = line.split_whitespace().next().unwrap_or_default();
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) else {
            continue;
        };
        let mut data = vec![0u8; (hi - lo) as usize];
        // Some mappings ([vvar], guard pages) cannot be read: skipped.
        if mem.seek(SeekFrom::Start(lo)).is_ok() && mem.read_exact(&mut data).is_ok() {
            found += count(&data);
        }
    }
    Ok(found)
}
