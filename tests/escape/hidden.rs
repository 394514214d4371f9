//! Changes git does not show but host programs run (issue 9 item 7): they
//! cannot be refused (installing packages is the agent's job), so a direct
//! session names them when it ends, on stderr and in the audit log.

use crate::harness::Cage;

/// Layer: guard (report). Packages, bytecode, path hooks, a virtualenv's
/// scripts and an ignored executable the session wrote are named; a file
/// it changed and then dated back with `touch -d` too (ctime, not mtime);
/// what it did not touch, and what git shows, are not.
#[test]
fn a_direct_session_names_the_changes_git_does_not_show() {
    require_userns!();
    let cage = Cage::new()
        .workspace_file(".gitignore", "node_modules/\nbuild/\n__pycache__/\nvenv/\n")
        .workspace_file("node_modules/old/index.js", "old\n")
        .workspace_file("node_modules/dated/index.js", "dated\n")
        .workspace_file("venv/pyvenv.cfg", "home = /usr/bin\n");
    // cage counts from a second before the session starts (file times
    // lag the clock, and some filesystems keep whole seconds): let the
    // setup's files be older than that. Not a timing assertion.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = cage.sh(
        "set -e; mkdir -p node_modules/evil build __pycache__ venv/bin venv/lib/site-packages; \
         echo 'require(\"child_process\")' > node_modules/evil/index.js; \
         echo 'evil' >> node_modules/dated/index.js; \
         touch -d 2001-01-01 node_modules/dated/index.js; \
         echo x > __pycache__/m.cpython-312.pyc; \
         echo 'import os' > venv/lib/site-packages/evil.pth; \
         echo '#!/bin/sh' > venv/bin/activate; \
         printf '#!/bin/sh\\necho evil\\n' > build/run.sh; chmod +x build/run.sh; \
         printf '#!/bin/sh\\n' > shown.sh; chmod +x shown.sh; echo ok",
    );
    out.assert_success();
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("git does not show"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    let line = lines[0];
    assert!(line.contains("changed 6 file(s)"), "{out}");
    for class in [
        "2 under node_modules/",
        "1 *.pyc",
        "1 *.pth",
        "1 in a virtualenv's bin/",
        "1 ignored executable",
    ] {
        assert!(line.contains(class), "{class}: {out}");
    }
    let log = cage.cli(["log"]);
    let record: String = log
        .stdout
        .lines()
        .filter(|l| l.contains("git does not show"))
        .collect();
    for path in [
        "node_modules/evil/index.js",
        "node_modules/dated/index.js",
        "__pycache__/m.cpython-312.pyc",
        "venv/lib/site-packages/evil.pth",
        "venv/bin/activate",
        "build/run.sh",
    ] {
        assert!(record.contains(path), "{path} not in the log\n{log}");
    }
    assert!(!record.contains("node_modules/old"), "{log}");
    assert!(!record.contains("shown.sh"), "{log}");

    // A session that leaves nothing of the kind says nothing.
    let cage = Cage::new().workspace_file(".gitignore", "node_modules/\n");
    let out = cage.sh("echo hi > notes.txt; printf '#!/bin/sh\\n' > tool.sh; chmod +x tool.sh");
    out.assert_success();
    assert!(!out.stderr.contains("git does not show"), "{out}");
}
