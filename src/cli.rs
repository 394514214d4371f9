//! The command-line interface: clap types only.
//!
//! This file is also the source of `man/cage.1` and `completions/`; a test
//! fails when the committed copies differ from what it generates.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::policy::{Layer, NetMode, WorkspaceMode};

const AFTER_HELP: &str = "\
Examples:
  cage -- claude                      run Claude Code in the current repository,
                                      under the claude profile (named after it)
  cage -p claude -- claude            the same, naming the profile
  cage --net none --dry-run -- sh     print what cage would do, run nothing
  cage --rw ~/scratch -- make         also let the command write ~/scratch
  cage explain ~/.ssh/id_ed25519      is this path visible inside, and why?
  cage selftest                       try to escape the cage a run here gets,
                                      against decoys; exit 1 if anything got out
  cage policy show                    the effective policy, rule by rule
  cage --net proxy --allow-host api.anthropic.com -- claude
                                      only that host, through cage's proxy
  cage log                            the last session's network decisions
  cage --workspace overlay -- claude  writes land in a session, not the workspace
  cage diff --stat / cage apply       review that session, then land it

Exit status: the command's own status (128+N when killed by signal N);
125 when cage itself fails, 126 when COMMAND cannot be executed, 127 when
COMMAND is not found (on your PATH, or inside the cage). `cage selftest`:
0 when every attempt was blocked, 1 when any got through.";

/// A rootless sandbox for AI agent CLIs.
///
/// cage runs COMMAND in fresh user, mount, pid, net, ipc, uts and cgroup
/// namespaces, behind Landlock and a seccomp filter, with capabilities
/// dropped. It sees the workspace (the git top level, else the working
/// directory), what its policy grants, and nothing else.
#[derive(Debug, Parser)]
#[command(
    name = "cage",
    version,
    after_help = AFTER_HELP,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND caged (the same as `cage [OPTIONS] -- COMMAND`).
    Run(RunArgs),
    /// Show, check or start a policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Say whether a path or host is allowed inside the cage, and which rule
    /// decides. Exit 0 when allowed, 1 when not.
    Explain(ExplainArgs),
    /// Trust a project policy file so it may widen access (pins its sha256).
    Trust(TrustArgs),
    /// Forget the trust pinned for a project policy file.
    Untrust(TrustArgs),
    /// Report what this host can enforce, what cage does about each gap,
    /// and whether `cage -- true` runs here (exit 1 if it cannot).
    Doctor,
    /// Try to get out: build the plan a run here would get, against a
    /// throwaway copy of the workspace's shape and a temporary home with
    /// planted decoys, run a battery of escape attempts inside it and print
    /// one line per attempt. Exit 0 when every attempt was blocked, 1 when
    /// any got through (EXPOSED), 125 when the test could not run.
    Selftest(SelftestArgs),
    /// Print aliases that run the agents found on PATH caged, for your
    /// shell's rc file: eval "$(cage shell-init bash)".
    ShellInit(ShellInitArgs),
    /// Show a session's audit log: its start, the enforcement achieved,
    /// every network and DNS decision, its end.
    Log(LogArgs),
    /// Allow HOST[:PORT] in a running proxy session, from another
    /// terminal, for --for (default: the rest of the session). An audit
    /// record names who did it and when it expires.
    Allow(AllowArgs),
    /// Deny HOST[:PORT] in a running proxy session (replacing a rule that
    /// `cage allow` added); an audit record names who did it.
    Deny(DenyArgs),
    /// List sessions: id, start time, status, the changes an overlay
    /// session holds, workspace and command. Every run prunes old sessions
    /// (see --prune); CAGE_KEEP_SESSIONS and CAGE_SESSION_MAX_DAYS change
    /// the defaults, 0 turning that rule off.
    Sessions(SessionsArgs),
    /// Show an overlay session's changes as a unified diff against the
    /// workspace: additions, modifications, deletions, modes, links and
    /// binary files; protected paths are flagged. For a direct session:
    /// the files it changed, git's diff of the tracked ones, the others
    /// named.
    Diff(DiffArgs),
    /// Land an overlay session's changes in the workspace, each file
    /// replaced atomically. Refuses files changed on the host since the
    /// session started, unless --force. Safe to run again after an
    /// interruption.
    Apply(ApplyArgs),
    /// Remove an overlay session's directory (its changes and its log),
    /// without asking.
    Discard(DiscardArgs),
    /// Put back a protected path that a session created and cage moved
    /// into the session's quarantine. Never overwrites an existing file.
    Restore(RestoreArgs),
    /// Print shell completions for SHELL.
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Subcommand)]
// Parsed once per run; boxing clap's flattened args buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum PolicyCommand {
    /// Print the effective policy, every rule with where it came from.
    Show {
        #[command(flatten)]
        policy: PolicyArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The command a run would start: without -p, the profile named
        /// after it applies, as in a run.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Validate a policy file (default: the project's .cage.toml).
    Check {
        /// The file to check.
        file: Option<PathBuf>,
    },
    /// Write a starter .cage.toml in the working directory.
    Init {
        /// A profile for the file to extend (for example `claude`).
        #[arg(short, long, value_name = "NAME")]
        profile: Option<String>,
        /// Overwrite an existing .cage.toml.
        #[arg(long)]
        force: bool,
    },
}

/// Options that select and adjust the policy, shared by `run`, `explain`
/// and `policy show`.
#[derive(Debug, Default, Clone, Args)]
pub struct PolicyArgs {
    /// Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml).
    /// Repeatable; applied in order.
    #[arg(short = 'p', long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Apply a policy file (trusted: you named it). Repeatable.
    #[arg(short = 'f', long = "policy", value_name = "FILE")]
    pub policy_files: Vec<PathBuf>,
    /// Make PATH visible read-only.
    #[arg(long, value_name = "PATH")]
    pub ro: Vec<String>,
    /// Make PATH visible and writable.
    #[arg(long, value_name = "PATH")]
    pub rw: Vec<String>,
    /// Hide PATH even when a broader rule grants it.
    #[arg(long, value_name = "PATH")]
    pub hide: Vec<String>,
    /// Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an
    /// optional :PORT or :* (no port means 443 and 80).
    #[arg(long, value_name = "PATTERN")]
    pub allow_host: Vec<String>,
    /// Network: none (loopback only), proxy (allowed hosts), host (no
    /// network isolation).
    #[arg(long, value_name = "MODE")]
    pub net: Option<NetArg>,
    /// Pass NAME from the environment, or set NAME=VALUE.
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Workspace mode: direct (writes land), overlay (writes reviewed
    /// later), readonly.
    #[arg(long, value_name = "MODE")]
    pub workspace: Option<WorkspaceArg>,
    /// Ignore the project's .cage.toml.
    #[arg(long)]
    pub no_project_policy: bool,
    /// Without -p, do not apply the profile named after the command
    /// (`cage -- claude` otherwise applies the claude profile).
    #[arg(long)]
    pub no_auto_profile: bool,
    /// Run even if the kernel cannot enforce LAYER: landlock (run with
    /// what Landlock the kernel has), namespaces (when user namespaces
    /// cannot be created, run the graded mode: Landlock and seccomp on the
    /// host's file tree, --net none or proxy). cage says so on every run.
    #[arg(long, value_name = "LAYER")]
    pub allow_degraded: Vec<LayerArg>,
    /// Accept PATH as the workspace or a --ro/--rw grant although it is a
    /// directory other programs share sockets in (/tmp, /var/tmp, /dev/shm,
    /// /run, $XDG_RUNTIME_DIR) or a parent of one.
    #[arg(long, value_name = "PATH")]
    pub allow_shared_dir: Vec<std::path::PathBuf>,
    /// Keep the host's VAR out of the cage: inside, VAR holds a random
    /// placeholder of the same shape, and cage's proxy swaps the real value
    /// in only on HTTPS requests to HOST (which this also allows).
    #[arg(long, value_name = "VAR@HOST[,HOST]")]
    pub secret: Vec<String>,
}

#[derive(Debug, Default, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print the plan (what cage would do) and exit without running.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// The command to run, and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// A path (absolute, relative, or ~/...) or HOST[:PORT].
    pub target: String,
    /// The command a run would start: without -p, the profile named after
    /// it applies, as in a run (`cage explain api.anthropic.com -- claude`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// The command a run would start: without -p, the profile named after
    /// it applies, as in a run (`cage selftest -- claude`). It is not run.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The policy file (default: the project's .cage.toml).
    pub file: Option<PathBuf>,
    /// Trust without asking (for scripts). On a terminal, cage shows what
    /// the file widens and asks first; elsewhere it refuses without this.
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ShellInitArgs {
    pub shell: InitShell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// A session id, or a unique prefix of one (default: the newest
    /// session whose workspace holds the working directory).
    pub session: Option<String>,
    /// Print the records as JSON lines, as stored.
    #[arg(long)]
    pub json: bool,
    /// Keep printing records as they are written, until the session ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Every session running at or after TIME, newest first: an age (30m,
    /// 2h, 2d, 1w), a date (2026-12-01), a UTC time (2026-12-01T09:30),
    /// today or yesterday.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["session", "follow"])]
    pub since: Option<String>,
    /// Every session that started before TIME (as for --since).
    #[arg(long, value_name = "TIME", conflicts_with_all = ["session", "follow"])]
    pub until: Option<String>,
    /// Every session whose workspace is PATH or under it.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["session", "follow"])]
    pub workspace: Option<PathBuf>,
    /// Only records holding WORD (ASCII case ignored), over every session
    /// (or the one named).
    #[arg(long, value_name = "WORD", conflicts_with = "follow")]
    pub grep: Option<String>,
    /// Only denials: connections, DNS names, refused creations, lost
    /// records; each denied connection with the flag that allows it.
    #[arg(long, conflicts_with = "follow")]
    pub denied: bool,
}

#[derive(Debug, Args)]
pub struct AllowArgs {
    /// A host pattern, as in [network] allow: api.example.com,
    /// *.example.com, 10.0.0.0/8, example.com:8443.
    pub pattern: String,
    /// How long the rule lasts: 30s, 10m, 2h (default: the session).
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    /// The session (default: the running session of this workspace).
    #[arg(long)]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// A host pattern, as for `cage allow`.
    pub pattern: String,
    /// The session (default: the running session of this workspace).
    #[arg(long)]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Remove finished sessions beyond the newest --keep of each workspace
    /// and those older than --max-age days. Never removes a running
    /// session, one with changes not applied, or one holding quarantined
    /// files.
    #[arg(long)]
    pub prune: bool,
    /// With --prune: sessions kept per workspace (default 20, or
    /// CAGE_KEEP_SESSIONS).
    #[arg(long, value_name = "N", requires = "prune")]
    pub keep: Option<usize>,
    /// With --prune: remove sessions older than DAYS (default 30, or
    /// CAGE_SESSION_MAX_DAYS; 0 for no age limit).
    #[arg(long, value_name = "DAYS", requires = "prune")]
    pub max_age: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Show changed files with line counts instead of the diff.
    #[arg(long)]
    pub stat: bool,
    /// Colour the output: auto (on a terminal, unless NO_COLOR is set),
    /// always, never.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    pub color: ColorArg,
    /// A session id or a unique prefix of one (default: the latest overlay
    /// session of the workspace holding the working directory), then paths
    /// to limit the diff to. A first word that names a session and no
    /// existing path is taken as the session.
    #[arg(value_name = "[SESSION] [PATH]")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Overwrite files that changed on the host since the session started.
    #[arg(long)]
    pub force: bool,
    /// Apply this protected path too (repeat for each): protected paths
    /// (git config and hooks, .envrc, ...) are skipped otherwise.
    #[arg(long, value_name = "PATH")]
    pub include_protected: Vec<String>,
    /// A session id or a unique prefix of one (default: the latest overlay
    /// session of the workspace holding the working directory), then paths
    /// to limit the apply to.
    #[arg(value_name = "[SESSION] [PATH]")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DiscardArgs {
    /// A session id or a unique prefix of one (default: the latest overlay
    /// session of the workspace holding the working directory).
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The session id (or a unique prefix) the end-of-session warning named.
    pub session: String,
    /// The path as the warning printed it (relative paths are taken from
    /// the working directory).
    pub path: std::path::PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    None,
    Proxy,
    Host,
}

impl PolicyArgs {
    /// Whether no option was given.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
            && self.policy_files.is_empty()
            && self.ro.is_empty()
            && self.rw.is_empty()
            && self.hide.is_empty()
            && self.allow_host.is_empty()
            && self.net.is_none()
            && self.env.is_empty()
            && self.workspace.is_none()
            && !self.no_project_policy
            && !self.no_auto_profile
            && self.allow_degraded.is_empty()
            && self.allow_shared_dir.is_empty()
            && self.secret.is_empty()
    }

    /// Options given before a subcommand (`outer`, as in
    /// `cage -p claude explain HOST`) merged with the subcommand's own,
    /// which come later and so win where only one value can.
    pub fn merged(outer: &PolicyArgs, inner: &PolicyArgs) -> PolicyArgs {
        let cat = |a: &[String], b: &[String]| [a, b].concat();
        PolicyArgs {
            profiles: cat(&outer.profiles, &inner.profiles),
            policy_files: [&outer.policy_files[..], &inner.policy_files[..]].concat(),
            ro: cat(&outer.ro, &inner.ro),
            rw: cat(&outer.rw, &inner.rw),
            hide: cat(&outer.hide, &inner.hide),
            allow_host: cat(&outer.allow_host, &inner.allow_host),
            net: inner.net.or(outer.net),
            env: cat(&outer.env, &inner.env),
            workspace: inner.workspace.or(outer.workspace),
            no_project_policy: outer.no_project_policy || inner.no_project_policy,
            no_auto_profile: outer.no_auto_profile || inner.no_auto_profile,
            allow_degraded: [&outer.allow_degraded[..], &inner.allow_degraded[..]].concat(),
            allow_shared_dir: [&outer.allow_shared_dir[..], &inner.allow_shared_dir[..]].concat(),
            secret: cat(&outer.secret, &inner.secret),
        }
    }
}

/// For a usage error: `cage claude --version` (a forgotten `--`) as the
/// command line the user probably meant, `cage -- claude --version`. `None`
/// when the first word that is not an option is a subcommand, or there is
/// none, or a `--` is already there.
pub fn forgotten_separator(args: &[String]) -> Option<String> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let takes_value = |word: &str| {
        cmd.get_arguments().any(|a| {
            let hit = match word.strip_prefix("--") {
                Some(long) => a.get_long() == Some(long),
                None => word.len() == 2 && a.get_short() == word.chars().nth(1),
            };
            hit && a.get_action().takes_values()
        })
    };
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_str();
        if word == "--" {
            return None;
        }
        if word.starts_with('-') && word.len() > 1 {
            if !word.contains('=') && takes_value(word) {
                i += 1;
            }
            i += 1;
            continue;
        }
        let is_subcommand = cmd
            .get_subcommands()
            .any(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word));
        if is_subcommand {
            return None;
        }
        let mut words: Vec<String> = vec!["cage".into()];
        words.extend(args[..i].iter().map(|w| shell_quote(w)));
        words.push("--".into());
        words.extend(args[i..].iter().map(|w| shell_quote(w)));
        return Some(words.join(" "));
    }
    None
}

/// A word as a POSIX shell would need it written.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

impl From<NetArg> for NetMode {
    fn from(n: NetArg) -> Self {
        match n {
            NetArg::None => NetMode::None,
            NetArg::Proxy => NetMode::Proxy,
            NetArg::Host => NetMode::Host,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkspaceArg {
    Direct,
    Overlay,
    Readonly,
}

impl From<WorkspaceArg> for WorkspaceMode {
    fn from(w: WorkspaceArg) -> Self {
        match w {
            WorkspaceArg::Direct => WorkspaceMode::Direct,
            WorkspaceArg::Overlay => WorkspaceMode::Overlay,
            WorkspaceArg::Readonly => WorkspaceMode::Readonly,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayerArg {
    Landlock,
    Namespaces,
}

impl From<LayerArg> for Layer {
    fn from(l: LayerArg) -> Self {
        match l {
            LayerArg::Landlock => Layer::Landlock,
            LayerArg::Namespaces => Layer::Namespaces,
        }
    }
}

/// Sections of the man page that clap does not generate, in roff.
const MAN_EXTRA: &str = r#".SH EXAMPLES
.TP
\fBcage \-\- claude\fR
Run Claude Code caged in the current repository.
.TP
\fBcage \-p claude \-\-dry\-run \-\- claude\fR
Print the plan: every mount, Landlock rule, denied syscall and variable, with the rule behind it.
.TP
\fBcage explain ~/.ssh/id_ed25519\fR
Say whether the path is visible inside, and which rule decides.
.TP
\fBcage policy check\fR
Validate the project's .cage.toml.
.TP
\fBcage \-\-net proxy \-\-allow\-host api.anthropic.com \-\- claude\fR
Give the agent that one host (ports 443 and 80), through cage's proxy; everything else is refused and logged.
.TP
\fBcage \-\-workspace overlay \-\- claude\fR
Run the agent on an overlay of the workspace: its writes land in the session's directory, and the workspace does not change.
.TP
\fBcage diff \-\-stat\fR; \fBcage diff\fR; \fBcage apply\fR
Review the latest overlay session of this workspace, then land it; \fBcage discard\fR drops it instead.
.TP
\fBcage log \-\-follow\fR
Watch the current workspace's latest session: every connection and DNS query, allowed or denied.
.SH EXIT STATUS
The command's own exit status; 128+N when it was killed by signal N.
.TP
\fB125\fR
cage itself failed: bad policy, a layer that cannot be enforced, a setup step.
.TP
\fB126\fR
The command was found but could not be executed.
.TP
\fB127\fR
The command was not found on your PATH, or not inside the cage; the message says which.
.SH FILES
.TP
\fI~/.config/cage/config.toml\fR
The user's policy, applied after the built-in base profile.
.TP
\fI~/.config/cage/profiles/NAME.toml\fR
User profiles, for \-p NAME and extends; they shadow built-ins of the same name. Without \-p, the profile named after the command applies (\-\-no\-auto\-profile turns that off).
.TP
\fI~/.config/cage/trusted.json\fR
Hashes of trusted project policy files (cage trust).
.TP
\fI.cage.toml\fR
The project's policy, found from the working directory up to the repository root. Untrusted, it may only narrow.
.TP
\fI~/.local/state/cage/sessions/ID/audit.jsonl\fR
A session's audit log, one JSON object per line (cage log). Never visible inside the cage.
.TP
\fI~/.local/state/cage/sessions/ID/session.toml\fR, \fIupper/\fR, \fIwork/\fR
The session's record (workspace, mode, command, start, status) and, in overlay mode, the overlay's upper layer (the session's changes) and work directory (cage diff, apply, discard).
.SH ENVIRONMENT
cage clears the environment: the command sees HOME, USER, LOGNAME, SHELL, PATH, CAGE=1, the names the policy passes ([env] pass, \-\-env NAME) and the values it sets. In proxy network mode it also sets HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (and their lowercase forms) to http://127.0.0.1:3128, and NO_PROXY to localhost,127.0.0.1,::1. XDG_CONFIG_HOME and XDG_STATE_HOME move cage's own files.
.SH SECURITY
cage assumes the caged process is hostile. It runs it in new user, mount, pid, net, ipc, uts and cgroup namespaces with a fresh tmpfs root; a Landlock ruleset mirrors the view; a seccomp filter denies ptrace, keyring, bpf, io_uring, mount, namespace and module calls, TIOCSTI and TIOCLINUX, foreign socket families, and kills foreign syscall ABIs; every capability is dropped and no_new_privs set. The network namespace has only loopback; in proxy mode the proxy and DNS stub listen inside it and are served by cage from outside, allowing only the policy's hosts, refusing private and loopback addresses unless a rule names them, and logging every decision. If a layer cannot be enforced, cage refuses to run unless told otherwise. cage does not defend against kernel exploits: for that, use a VM or gVisor.
"#;

/// The man page, generated from the CLI definition.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
    out.extend_from_slice(MAN_EXTRA.as_bytes());
    Ok(out)
}

/// Completions for `shell`, generated from the CLI definition.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "cage",
        &mut out,
    );
    out
}
