//! Hygiene (DESIGN threat 1): what the agent inherits from the process that
//! started cage. The environment is cleared to an allowlist and every
//! descriptor above 2 is closed, so secrets a user's shell or IDE holds in
//! variables or open files do not cross into the cage.
//!
//! Layer: hygiene (plus processes: cage init is non-dumpable, so the
//! supervisor's environment is not readable through /proc/1).

use std::fs;

use crate::harness::{ATTEMPT, Cage};

const AWS_SECRET: &str = "env-aws-secret-9b1f0c";
const GITHUB_TOKEN: &str = "ghp_envtoken5a7d2e";
const FD_SECRET: &str = "fd-secret-3c8e41";

/// Layer: hygiene. Neither `env` nor /proc/self/environ shows the
/// variables; /proc/1/environ (cage init, a copy of the supervisor, which
/// does have them) is unreadable because init is non-dumpable.
#[test]
fn secret_env_vars_are_absent() {
    require_userns!();
    let cage = Cage::new()
        .host_env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .host_env("GITHUB_TOKEN", GITHUB_TOKEN);
    // Control: the variables do reach a command the same way started.
    let host = cage.run_on_host(["env"]);
    host.assert_line(&format!("GITHUB_TOKEN={GITHUB_TOKEN}"));

    let out = cage.sh(&format!(
        r#"{ATTEMPT}
env
tr '\0' '\n' < /proc/self/environ
attempt 'tr "\0" "\n" < /proc/1/environ | grep -q .'
exit 0"#
    ));
    out.assert_success()
        .assert_line("CAGE=1")
        .assert_all_refused(1)
        .assert_absent(AWS_SECRET)
        .assert_absent(GITHUB_TOKEN)
        .assert_absent("AWS_SECRET_ACCESS_KEY")
        .assert_absent("GITHUB_TOKEN");
}

/// Layer: hygiene. The test leaves a secret file open as descriptor 5,
/// without close-on-exec, as a careless parent would; inside, descriptor 5
/// does not exist and the secret cannot be read through it.
#[test]
fn parent_fd_is_not_inherited() {
    require_userns!();
    let cage = Cage::new();
    // Outside the home: the file must not be reachable by path either.
    let secret = cage.root().join("secret");
    fs::write(&secret, FD_SECRET).unwrap();
    let cage = cage.inherit_file(5, &secret);
    // Control: a host command started the same way reads it through fd 5.
    cage.run_on_host(["sh", "-c", "cat <&5"])
        .assert_success()
        .assert_line(FD_SECRET);

    let out = cage.sh(&format!(
        r#"{ATTEMPT}
attempt 'test -e /proc/self/fd/5'
attempt 'cat /proc/self/fd/5'
attempt 'cat <&5'
echo "fds=$(ls /proc/self/fd | tr '\n' ' ')"
exit 0"#
    ));
    out.assert_success()
        .assert_all_refused(3)
        .assert_absent(FD_SECRET);
    // ls's own: stdin, stdout, stderr and the directory it reads.
    assert_eq!(out.value("fds"), Some("0 1 2 3 "), "\n{out}");
}
