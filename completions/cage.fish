# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cage_global_optspecs
    string join \n p/profile= f/policy= ro= rw= hide= allow-host= net= env= workspace= no-project-policy no-auto-profile allow-degraded= allow-shared-dir= secret= dry-run json h/help V/version
end

function __fish_cage_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cage_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cage_using_subcommand
    set -l cmd (__fish_cage_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cage -n "__fish_cage_needs_command" -s p -l profile -d 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order' -r
complete -c cage -n "__fish_cage_needs_command" -s f -l policy -d 'Apply a policy file (trusted: you named it). Repeatable' -r -F
complete -c cage -n "__fish_cage_needs_command" -l ro -d 'Make PATH visible read-only' -r
complete -c cage -n "__fish_cage_needs_command" -l rw -d 'Make PATH visible and writable' -r
complete -c cage -n "__fish_cage_needs_command" -l hide -d 'Hide PATH even when a broader rule grants it' -r
complete -c cage -n "__fish_cage_needs_command" -l allow-host -d 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)' -r
complete -c cage -n "__fish_cage_needs_command" -l net -d 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)' -r -f -a "none\t''
proxy\t''
host\t''"
complete -c cage -n "__fish_cage_needs_command" -l env -d 'Pass NAME from the environment, or set NAME=VALUE' -r
complete -c cage -n "__fish_cage_needs_command" -l workspace -d 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly' -r -f -a "direct\t''
overlay\t''
readonly\t''"
complete -c cage -n "__fish_cage_needs_command" -l allow-degraded -d 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host\'s file tree, --net none or proxy). cage says so on every run' -r -f -a "landlock\t''
namespaces\t''"
complete -c cage -n "__fish_cage_needs_command" -l allow-shared-dir -d 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one' -r -F
complete -c cage -n "__fish_cage_needs_command" -l secret -d 'Keep the host\'s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage\'s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)' -r
complete -c cage -n "__fish_cage_needs_command" -l no-project-policy -d 'Ignore the project\'s .cage.toml'
complete -c cage -n "__fish_cage_needs_command" -l no-auto-profile -d 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
complete -c cage -n "__fish_cage_needs_command" -l dry-run -d 'Print the plan (what cage would do) and exit without running'
complete -c cage -n "__fish_cage_needs_command" -l json -d 'With --dry-run: print the plan as JSON'
complete -c cage -n "__fish_cage_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cage -n "__fish_cage_needs_command" -s V -l version -d 'Print version'
complete -c cage -n "__fish_cage_needs_command" -a "run" -d 'Run COMMAND caged (the same as `cage [OPTIONS] -- COMMAND`)'
complete -c cage -n "__fish_cage_needs_command" -a "policy" -d 'Show, check or start a policy'
complete -c cage -n "__fish_cage_needs_command" -a "explain" -d 'Say whether a path or host is allowed inside the cage, and which rule decides. Exit 0 when allowed, 1 when not'
complete -c cage -n "__fish_cage_needs_command" -a "trust" -d 'Trust a project policy file so it may widen access (pins its sha256)'
complete -c cage -n "__fish_cage_needs_command" -a "untrust" -d 'Forget the trust pinned for a project policy file'
complete -c cage -n "__fish_cage_needs_command" -a "doctor" -d 'Report what this host can enforce, what cage does about each gap, and whether `cage -- true` runs here (exit 1 if it cannot)'
complete -c cage -n "__fish_cage_needs_command" -a "selftest" -d 'Try to get out: build the plan a run here would get, against a throwaway copy of the workspace\'s shape and a temporary home with planted decoys, run a battery of escape attempts inside it and print one line per attempt. Exit 0 when every attempt was blocked, 1 when any got through (EXPOSED), 125 when the test could not run'
complete -c cage -n "__fish_cage_needs_command" -a "shell-init" -d 'Print aliases that run the agents found on PATH caged, for your shell\'s rc file: eval "$(cage shell-init bash)"'
complete -c cage -n "__fish_cage_needs_command" -a "log" -d 'Show a session\'s audit log: its start, the enforcement achieved, every network and DNS decision, its end'
complete -c cage -n "__fish_cage_needs_command" -a "allow" -d 'Allow HOST[:PORT] in a running proxy session, from another terminal, for --for (default: the rest of the session). An audit record names who did it and when it expires'
complete -c cage -n "__fish_cage_needs_command" -a "deny" -d 'Deny HOST[:PORT] in a running proxy session (replacing a rule that `cage allow` added); an audit record names who did it'
complete -c cage -n "__fish_cage_needs_command" -a "sessions" -d 'List sessions: id, start time, status, the changes an overlay session holds, workspace and command. Every run prunes old sessions (see --prune); CAGE_KEEP_SESSIONS and CAGE_SESSION_MAX_DAYS change the defaults, 0 turning that rule off'
complete -c cage -n "__fish_cage_needs_command" -a "diff" -d 'Show an overlay session\'s changes as a unified diff against the workspace: additions, modifications, deletions, modes, links and binary files; protected paths are flagged. For a direct session: the files it changed, git\'s diff of the tracked ones, the others named'
complete -c cage -n "__fish_cage_needs_command" -a "apply" -d 'Land an overlay session\'s changes in the workspace, each file replaced atomically. Refuses files changed on the host since the session started, unless --force. Safe to run again after an interruption'
complete -c cage -n "__fish_cage_needs_command" -a "discard" -d 'Remove an overlay session\'s directory (its changes and its log), without asking'
complete -c cage -n "__fish_cage_needs_command" -a "restore" -d 'Put back a protected path that a session created and cage moved into the session\'s quarantine. Never overwrites an existing file'
complete -c cage -n "__fish_cage_needs_command" -a "completions" -d 'Print shell completions for SHELL'
complete -c cage -n "__fish_cage_needs_command" -a "man" -d 'Print the man page (roff)'
complete -c cage -n "__fish_cage_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cage -n "__fish_cage_using_subcommand run" -s p -l profile -d 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order' -r
complete -c cage -n "__fish_cage_using_subcommand run" -s f -l policy -d 'Apply a policy file (trusted: you named it). Repeatable' -r -F
complete -c cage -n "__fish_cage_using_subcommand run" -l ro -d 'Make PATH visible read-only' -r
complete -c cage -n "__fish_cage_using_subcommand run" -l rw -d 'Make PATH visible and writable' -r
complete -c cage -n "__fish_cage_using_subcommand run" -l hide -d 'Hide PATH even when a broader rule grants it' -r
complete -c cage -n "__fish_cage_using_subcommand run" -l allow-host -d 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)' -r
complete -c cage -n "__fish_cage_using_subcommand run" -l net -d 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)' -r -f -a "none\t''
proxy\t''
host\t''"
complete -c cage -n "__fish_cage_using_subcommand run" -l env -d 'Pass NAME from the environment, or set NAME=VALUE' -r
complete -c cage -n "__fish_cage_using_subcommand run" -l workspace -d 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly' -r -f -a "direct\t''
overlay\t''
readonly\t''"
complete -c cage -n "__fish_cage_using_subcommand run" -l allow-degraded -d 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host\'s file tree, --net none or proxy). cage says so on every run' -r -f -a "landlock\t''
namespaces\t''"
complete -c cage -n "__fish_cage_using_subcommand run" -l allow-shared-dir -d 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one' -r -F
complete -c cage -n "__fish_cage_using_subcommand run" -l secret -d 'Keep the host\'s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage\'s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)' -r
complete -c cage -n "__fish_cage_using_subcommand run" -l no-project-policy -d 'Ignore the project\'s .cage.toml'
complete -c cage -n "__fish_cage_using_subcommand run" -l no-auto-profile -d 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
complete -c cage -n "__fish_cage_using_subcommand run" -l dry-run -d 'Print the plan (what cage would do) and exit without running'
complete -c cage -n "__fish_cage_using_subcommand run" -l json -d 'With --dry-run: print the plan as JSON'
complete -c cage -n "__fish_cage_using_subcommand run" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand policy; and not __fish_seen_subcommand_from show check init help" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand policy; and not __fish_seen_subcommand_from show check init help" -f -a "show" -d 'Print the effective policy, every rule with where it came from'
complete -c cage -n "__fish_cage_using_subcommand policy; and not __fish_seen_subcommand_from show check init help" -f -a "check" -d 'Validate a policy file (default: the project\'s .cage.toml)'
complete -c cage -n "__fish_cage_using_subcommand policy; and not __fish_seen_subcommand_from show check init help" -f -a "init" -d 'Write a starter .cage.toml in the working directory'
complete -c cage -n "__fish_cage_using_subcommand policy; and not __fish_seen_subcommand_from show check init help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -s p -l profile -d 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order' -r
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -s f -l policy -d 'Apply a policy file (trusted: you named it). Repeatable' -r -F
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l ro -d 'Make PATH visible read-only' -r
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l rw -d 'Make PATH visible and writable' -r
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l hide -d 'Hide PATH even when a broader rule grants it' -r
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l allow-host -d 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)' -r
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l net -d 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)' -r -f -a "none\t''
proxy\t''
host\t''"
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l env -d 'Pass NAME from the environment, or set NAME=VALUE' -r
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l workspace -d 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly' -r -f -a "direct\t''
overlay\t''
readonly\t''"
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l allow-degraded -d 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host\'s file tree, --net none or proxy). cage says so on every run' -r -f -a "landlock\t''
namespaces\t''"
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l allow-shared-dir -d 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one' -r -F
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l secret -d 'Keep the host\'s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage\'s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)' -r
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l no-project-policy -d 'Ignore the project\'s .cage.toml'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l no-auto-profile -d 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of text'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from init" -s p -l profile -d 'A profile for the file to extend (for example `claude`)' -r
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from init" -l force -d 'Overwrite an existing .cage.toml'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the effective policy, every rule with where it came from'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate a policy file (default: the project\'s .cage.toml)'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "init" -d 'Write a starter .cage.toml in the working directory'
complete -c cage -n "__fish_cage_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cage -n "__fish_cage_using_subcommand explain" -s p -l profile -d 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order' -r
complete -c cage -n "__fish_cage_using_subcommand explain" -s f -l policy -d 'Apply a policy file (trusted: you named it). Repeatable' -r -F
complete -c cage -n "__fish_cage_using_subcommand explain" -l ro -d 'Make PATH visible read-only' -r
complete -c cage -n "__fish_cage_using_subcommand explain" -l rw -d 'Make PATH visible and writable' -r
complete -c cage -n "__fish_cage_using_subcommand explain" -l hide -d 'Hide PATH even when a broader rule grants it' -r
complete -c cage -n "__fish_cage_using_subcommand explain" -l allow-host -d 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)' -r
complete -c cage -n "__fish_cage_using_subcommand explain" -l net -d 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)' -r -f -a "none\t''
proxy\t''
host\t''"
complete -c cage -n "__fish_cage_using_subcommand explain" -l env -d 'Pass NAME from the environment, or set NAME=VALUE' -r
complete -c cage -n "__fish_cage_using_subcommand explain" -l workspace -d 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly' -r -f -a "direct\t''
overlay\t''
readonly\t''"
complete -c cage -n "__fish_cage_using_subcommand explain" -l allow-degraded -d 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host\'s file tree, --net none or proxy). cage says so on every run' -r -f -a "landlock\t''
namespaces\t''"
complete -c cage -n "__fish_cage_using_subcommand explain" -l allow-shared-dir -d 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one' -r -F
complete -c cage -n "__fish_cage_using_subcommand explain" -l secret -d 'Keep the host\'s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage\'s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)' -r
complete -c cage -n "__fish_cage_using_subcommand explain" -l no-project-policy -d 'Ignore the project\'s .cage.toml'
complete -c cage -n "__fish_cage_using_subcommand explain" -l no-auto-profile -d 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
complete -c cage -n "__fish_cage_using_subcommand explain" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand trust" -s y -l yes -d 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this'
complete -c cage -n "__fish_cage_using_subcommand trust" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand untrust" -s y -l yes -d 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this'
complete -c cage -n "__fish_cage_using_subcommand untrust" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand selftest" -s p -l profile -d 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order' -r
complete -c cage -n "__fish_cage_using_subcommand selftest" -s f -l policy -d 'Apply a policy file (trusted: you named it). Repeatable' -r -F
complete -c cage -n "__fish_cage_using_subcommand selftest" -l ro -d 'Make PATH visible read-only' -r
complete -c cage -n "__fish_cage_using_subcommand selftest" -l rw -d 'Make PATH visible and writable' -r
complete -c cage -n "__fish_cage_using_subcommand selftest" -l hide -d 'Hide PATH even when a broader rule grants it' -r
complete -c cage -n "__fish_cage_using_subcommand selftest" -l allow-host -d 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)' -r
complete -c cage -n "__fish_cage_using_subcommand selftest" -l net -d 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)' -r -f -a "none\t''
proxy\t''
host\t''"
complete -c cage -n "__fish_cage_using_subcommand selftest" -l env -d 'Pass NAME from the environment, or set NAME=VALUE' -r
complete -c cage -n "__fish_cage_using_subcommand selftest" -l workspace -d 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly' -r -f -a "direct\t''
overlay\t''
readonly\t''"
complete -c cage -n "__fish_cage_using_subcommand selftest" -l allow-degraded -d 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host\'s file tree, --net none or proxy). cage says so on every run' -r -f -a "landlock\t''
namespaces\t''"
complete -c cage -n "__fish_cage_using_subcommand selftest" -l allow-shared-dir -d 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one' -r -F
complete -c cage -n "__fish_cage_using_subcommand selftest" -l secret -d 'Keep the host\'s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage\'s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)' -r
complete -c cage -n "__fish_cage_using_subcommand selftest" -l no-project-policy -d 'Ignore the project\'s .cage.toml'
complete -c cage -n "__fish_cage_using_subcommand selftest" -l no-auto-profile -d 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
complete -c cage -n "__fish_cage_using_subcommand selftest" -l json -d 'Print the results as JSON'
complete -c cage -n "__fish_cage_using_subcommand selftest" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand shell-init" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand log" -l since -d 'Every session running at or after TIME, newest first: an age (30m, 2h, 2d, 1w), a date (2026-12-01), a UTC time (2026-12-01T09:30), today or yesterday' -r
complete -c cage -n "__fish_cage_using_subcommand log" -l until -d 'Every session that started before TIME (as for --since)' -r
complete -c cage -n "__fish_cage_using_subcommand log" -l workspace -d 'Every session whose workspace is PATH or under it' -r -F
complete -c cage -n "__fish_cage_using_subcommand log" -l grep -d 'Only records holding WORD (ASCII case ignored), over every session (or the one named)' -r
complete -c cage -n "__fish_cage_using_subcommand log" -l json -d 'Print the records as JSON lines, as stored'
complete -c cage -n "__fish_cage_using_subcommand log" -s f -l follow -d 'Keep printing records as they are written, until the session ends'
complete -c cage -n "__fish_cage_using_subcommand log" -l denied -d 'Only denials: connections, DNS names, refused creations, lost records; each denied connection with the flag that allows it'
complete -c cage -n "__fish_cage_using_subcommand log" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand allow" -l for -d 'How long the rule lasts: 30s, 10m, 2h (default: the session)' -r
complete -c cage -n "__fish_cage_using_subcommand allow" -l session -d 'The session (default: the running session of this workspace)' -r
complete -c cage -n "__fish_cage_using_subcommand allow" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand deny" -l session -d 'The session (default: the running session of this workspace)' -r
complete -c cage -n "__fish_cage_using_subcommand deny" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand sessions" -l keep -d 'With --prune: sessions kept per workspace (default 20, or CAGE_KEEP_SESSIONS)' -r
complete -c cage -n "__fish_cage_using_subcommand sessions" -l max-age -d 'With --prune: remove sessions older than DAYS (default 30, or CAGE_SESSION_MAX_DAYS; 0 for no age limit)' -r
complete -c cage -n "__fish_cage_using_subcommand sessions" -l prune -d 'Remove finished sessions beyond the newest --keep of each workspace and those older than --max-age days. Never removes a running session, one with changes not applied, or one holding quarantined files'
complete -c cage -n "__fish_cage_using_subcommand sessions" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand diff" -l color -d 'Colour the output: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c cage -n "__fish_cage_using_subcommand diff" -l stat -d 'Show changed files with line counts instead of the diff'
complete -c cage -n "__fish_cage_using_subcommand diff" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand apply" -l include-protected -d 'Apply this protected path too (repeat for each): protected paths (git config and hooks, .envrc, ...) are skipped otherwise' -r
complete -c cage -n "__fish_cage_using_subcommand apply" -l force -d 'Overwrite files that changed on the host since the session started'
complete -c cage -n "__fish_cage_using_subcommand apply" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand discard" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand restore" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand completions" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand man" -s h -l help -d 'Print help'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "run" -d 'Run COMMAND caged (the same as `cage [OPTIONS] -- COMMAND`)'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "policy" -d 'Show, check or start a policy'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "explain" -d 'Say whether a path or host is allowed inside the cage, and which rule decides. Exit 0 when allowed, 1 when not'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "trust" -d 'Trust a project policy file so it may widen access (pins its sha256)'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "untrust" -d 'Forget the trust pinned for a project policy file'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "doctor" -d 'Report what this host can enforce, what cage does about each gap, and whether `cage -- true` runs here (exit 1 if it cannot)'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "selftest" -d 'Try to get out: build the plan a run here would get, against a throwaway copy of the workspace\'s shape and a temporary home with planted decoys, run a battery of escape attempts inside it and print one line per attempt. Exit 0 when every attempt was blocked, 1 when any got through (EXPOSED), 125 when the test could not run'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "shell-init" -d 'Print aliases that run the agents found on PATH caged, for your shell\'s rc file: eval "$(cage shell-init bash)"'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "log" -d 'Show a session\'s audit log: its start, the enforcement achieved, every network and DNS decision, its end'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "allow" -d 'Allow HOST[:PORT] in a running proxy session, from another terminal, for --for (default: the rest of the session). An audit record names who did it and when it expires'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "deny" -d 'Deny HOST[:PORT] in a running proxy session (replacing a rule that `cage allow` added); an audit record names who did it'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "sessions" -d 'List sessions: id, start time, status, the changes an overlay session holds, workspace and command. Every run prunes old sessions (see --prune); CAGE_KEEP_SESSIONS and CAGE_SESSION_MAX_DAYS change the defaults, 0 turning that rule off'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "diff" -d 'Show an overlay session\'s changes as a unified diff against the workspace: additions, modifications, deletions, modes, links and binary files; protected paths are flagged. For a direct session: the files it changed, git\'s diff of the tracked ones, the others named'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "apply" -d 'Land an overlay session\'s changes in the workspace, each file replaced atomically. Refuses files changed on the host since the session started, unless --force. Safe to run again after an interruption'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "discard" -d 'Remove an overlay session\'s directory (its changes and its log), without asking'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "restore" -d 'Put back a protected path that a session created and cage moved into the session\'s quarantine. Never overwrites an existing file'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "completions" -d 'Print shell completions for SHELL'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "man" -d 'Print the man page (roff)'
complete -c cage -n "__fish_cage_using_subcommand help; and not __fish_seen_subcommand_from run policy explain trust untrust doctor selftest shell-init log allow deny sessions diff apply discard restore completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cage -n "__fish_cage_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "show" -d 'Print the effective policy, every rule with where it came from'
complete -c cage -n "__fish_cage_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "check" -d 'Validate a policy file (default: the project\'s .cage.toml)'
complete -c cage -n "__fish_cage_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "init" -d 'Write a starter .cage.toml in the working directory'
