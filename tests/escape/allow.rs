//! A live allowlist (issue 15 item 4): `cage allow` from another terminal
//! changes a running proxy session's rules through a unix socket in the
//! session's directory, which the agent cannot reach, and which serves the
//! session's own user only (SO_PEERCRED).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{Cage, poll_until};

/// A plain HTTP server on the host's loopback, as the test user, that
/// writes its port into `port_file` and answers 200.
const SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_port))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
"#;

/// The one session directory of this cage, once it exists.
fn session_dir(cage: &Cage) -> PathBuf {
    let mut found = None;
    poll_until(Duration::from_secs(30), || {
        found = fs::read_dir(cage.sessions_dir())
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path()).next());
        found
            .as_ref()
            .is_some_and(|d| d.join("control.sock").exists())
    });
    found.expect("the session's directory and control socket")
}

fn events(cage: &Cage) -> Vec<serde_json::Value> {
    let dir = fs::read_dir(cage.sessions_dir())
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for(path: &Path) {
    assert!(
        poll_until(Duration::from_secs(30), || path.exists()),
        "{} never appeared",
        path.display()
    );
}

/// Layer: network (proxy) + control channel. A request the session's
/// rules deny goes through once `cage allow HOST:PORT --for 3s` is given
/// from another terminal, and is denied again once the rule has expired:
/// the order of the agent's results and of the log's records, never their
/// timing, is asserted.
#[test]
fn cage_allow_lets_a_denied_request_through_until_it_expires() {
    require_userns!();
    let cage = Cage::new().args(["--net", "proxy"]);
    let ws = cage.workspace().to_path_buf();
    let port_file = ws.join("port");
    let _server = cage.host_process(["python3", "-c", SERVER, port_file.to_str().unwrap()]);
    wait_for(&port_file);
    let port = fs::read_to_string(&port_file).unwrap();
    let agent = cage.spawn([
        "sh",
        "-c",
        "p=$(cat port); \
         g() { curl -s --noproxy '' -o /dev/null -w '%{http_code}' http://127.0.0.1:$p/; }; \
         echo before=$(g); : > ready; \
         while [ ! -e go ]; do sleep 0.05; done; echo during=$(g); \
         i=0; while [ $i -lt 400 ]; do c=$(g); [ \"$c\" = 403 ] && break; sleep 0.1; \
         i=$((i + 1)); done; echo after=$c",
    ]);
    wait_for(&ws.join("ready"));
    session_dir(&cage);
    let allow = cage.cli(["allow", &format!("127.0.0.1:{port}"), "--for", "3s"]);
    allow.assert_success();
    assert!(allow.stdout.contains("is allowed until"), "{allow}");
    fs::write(ws.join("go"), "").unwrap();
    let out = agent.wait();
    out.assert_success()
        .assert_line("before=403")
        .assert_line("during=200")
        .assert_line("after=403");

    // The log tells it in that order, and names who allowed it.
    let records = events(&cage);
    let story: Vec<String> = records
        .iter()
        .filter_map(|r| match r["event"].as_str()? {
            "net" => Some(format!("net {}", r["decision"].as_str()?)),
            "rule_changed" => Some(format!("rule {}", r["action"].as_str()?)),
            _ => None,
        })
        .collect();
    let first_allow = story.iter().position(|s| s == "net allow").unwrap();
    assert_eq!(
        story[..first_allow + 1],
        ["net deny", "rule allow", "net allow"],
        "{story:?}"
    );
    let expired = story.iter().position(|s| s == "rule expired").unwrap();
    assert!(expired > first_allow, "{story:?}");
    assert_eq!(
        story.last().map(String::as_str),
        Some("net deny"),
        "{story:?}"
    );
    let rule = records
        .iter()
        .find(|r| r["event"] == "rule_changed" && r["action"] == "allow")
        .unwrap();
    assert!(
        rule["expires"].is_string() && rule["by_uid"].is_number(),
        "{rule}"
    );
}

/// Layer: view + control channel. The agent cannot find or connect to the
/// socket `cage allow` uses, even given its host path; and a host process
/// of another user (root here) that can open it is refused by the
/// session's SO_PEERCRED check. No rule changes.
#[test]
fn the_agent_cannot_reach_the_control_channel() {
    require_userns!();
    let cage = Cage::new().args(["--net", "proxy"]);
    let ws = cage.workspace().to_path_buf();
    let agent = cage.spawn([
        "python3",
        "-c",
        "import glob, os, socket, time, json\n\
         open('ready', 'w').close()\n\
         while not os.path.exists('sock'): time.sleep(0.05)\n\
         path = open('sock').read()\n\
         found = glob.glob(os.path.expanduser('~/.local/state/cage/sessions/*/control.sock'))\n\
         print('found=%d' % len(found))\n\
         s = socket.socket(socket.AF_UNIX)\n\
         try:\n\
         \x20   s.connect(path)\n\
         \x20   s.sendall(json.dumps({'op': 'allow', 'pattern': 'evil.example', 'for_secs': None}).encode() + b'\\n')\n\
         \x20   print('CONNECTED', s.recv(4096))\n\
         except OSError as e:\n\
         \x20   print('REFUSED', e.errno)\n",
    ]);
    wait_for(&ws.join("ready"));
    let socket = session_dir(&cage).join("control.sock");
    // Another user on the host: root can open the 0600 socket, and the
    // session refuses it by its credentials.
    if nix::unistd::getuid().is_root() {
        let stream = UnixStream::connect(&socket).expect("root reaches the socket");
        // The session answers from the credentials alone, and may have
        // closed before the request is written.
        let _ = (&stream)
            .write_all(b"{\"op\":\"allow\",\"pattern\":\"evil.example\",\"for_secs\":null}\n");
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).unwrap();
        assert!(
            reply.contains("\"ok\":false") && reply.contains("refused: uid 0"),
            "{reply}"
        );
    }
    fs::write(ws.join("sock"), socket.to_str().unwrap()).unwrap();
    let out = agent.wait();
    out.assert_success().assert_line("found=0");
    assert!(out.stdout.contains("REFUSED"), "{out}");
    let changed = events(&cage)
        .into_iter()
        .filter(|r| r["event"] == "rule_changed")
        .count();
    assert_eq!(changed, 0, "a rule changed without the user");
}
