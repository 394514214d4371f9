
use builtin;
use str;

set edit:completion:arg-completer[cage] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'cage'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'cage'= {
            cand -p 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand --profile 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand -f 'Apply a policy file (trusted: you named it). Repeatable'
            cand --policy 'Apply a policy file (trusted: you named it). Repeatable'
            cand --ro 'Make PATH visible read-only'
            cand --rw 'Make PATH visible and writable'
            cand --hide 'Hide PATH even when a broader rule grants it'
            cand --allow-host 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)'
            cand --net 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)'
            cand --env 'Pass NAME from the environment, or set NAME=VALUE'
            cand --workspace 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly'
            cand --allow-degraded 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run'
            cand --allow-shared-dir 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one'
            cand --secret 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)'
            cand --no-project-policy 'Ignore the project''s .cage.toml'
            cand --no-auto-profile 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
            cand --dry-run 'Print the plan (what cage would do) and exit without running'
            cand --json 'With --dry-run: print the plan as JSON'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run COMMAND caged (the same as `cage [OPTIONS] -- COMMAND`)'
            cand policy 'Show, check or start a policy'
            cand explain 'Say whether a path or host is allowed inside the cage, and which rule decides. Exit 0 when allowed, 1 when not'
            cand trust 'Trust a project policy file so it may widen access (pins its sha256)'
            cand untrust 'Forget the trust pinned for a project policy file'
            cand doctor 'Report what this host can enforce, what cage does about each gap, and whether `cage -- true` runs here (exit 1 if it cannot)'
            cand selftest 'Try to get out: build the plan a run here would get, against a throwaway copy of the workspace''s shape and a temporary home with planted decoys, run a battery of escape attempts inside it and print one line per attempt. Exit 0 when every attempt was blocked, 1 when any got through (EXPOSED), 125 when the test could not run'
            cand shell-init 'Print aliases that run the agents found on PATH caged, for your shell''s rc file: eval "$(cage shell-init bash)"'
            cand log 'Show a session''s audit log: its start, the enforcement achieved, every network and DNS decision, its end'
            cand allow 'Allow HOST[:PORT] in a running proxy session, from another terminal, for --for (default: the rest of the session). An audit record names who did it and when it expires'
            cand deny 'Deny HOST[:PORT] in a running proxy session (replacing a rule that `cage allow` added); an audit record names who did it'
            cand sessions 'List sessions: id, start time, status, the changes an overlay session holds, workspace and command. Every run prunes old sessions (see --prune); CAGE_KEEP_SESSIONS and CAGE_SESSION_MAX_DAYS change the defaults, 0 turning that rule off'
            cand diff 'Show an overlay session''s changes as a unified diff against the workspace: additions, modifications, deletions, modes, links and binary files; protected paths are flagged. For a direct session: the files it changed, git''s diff of the tracked ones, the others named'
            cand apply 'Land an overlay session''s changes in the workspace, each file replaced atomically. Refuses files changed on the host since the session started, unless --force. Safe to run again after an interruption'
            cand discard 'Remove an overlay session''s directory (its changes and its log), without asking'
            cand restore 'Put back a protected path that a session created and cage moved into the session''s quarantine. Never overwrites an existing file'
            cand completions 'Print shell completions for SHELL'
            cand man 'Print the man page (roff)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cage;run'= {
            cand -p 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand --profile 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand -f 'Apply a policy file (trusted: you named it). Repeatable'
            cand --policy 'Apply a policy file (trusted: you named it). Repeatable'
            cand --ro 'Make PATH visible read-only'
            cand --rw 'Make PATH visible and writable'
            cand --hide 'Hide PATH even when a broader rule grants it'
            cand --allow-host 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)'
            cand --net 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)'
            cand --env 'Pass NAME from the environment, or set NAME=VALUE'
            cand --workspace 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly'
            cand --allow-degraded 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run'
            cand --allow-shared-dir 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one'
            cand --secret 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)'
            cand --no-project-policy 'Ignore the project''s .cage.toml'
            cand --no-auto-profile 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
            cand --dry-run 'Print the plan (what cage would do) and exit without running'
            cand --json 'With --dry-run: print the plan as JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;policy'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand show 'Print the effective policy, every rule with where it came from'
            cand check 'Validate a policy file (default: the project''s .cage.toml)'
            cand init 'Write a starter .cage.toml in the working directory'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cage;policy;show'= {
            cand -p 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand --profile 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand -f 'Apply a policy file (trusted: you named it). Repeatable'
            cand --policy 'Apply a policy file (trusted: you named it). Repeatable'
            cand --ro 'Make PATH visible read-only'
            cand --rw 'Make PATH visible and writable'
            cand --hide 'Hide PATH even when a broader rule grants it'
            cand --allow-host 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)'
            cand --net 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)'
            cand --env 'Pass NAME from the environment, or set NAME=VALUE'
            cand --workspace 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly'
            cand --allow-degraded 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run'
            cand --allow-shared-dir 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one'
            cand --secret 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)'
            cand --no-project-policy 'Ignore the project''s .cage.toml'
            cand --no-auto-profile 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
            cand --json 'Print JSON instead of text'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;policy;check'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;policy;init'= {
            cand -p 'A profile for the file to extend (for example `claude`)'
            cand --profile 'A profile for the file to extend (for example `claude`)'
            cand --force 'Overwrite an existing .cage.toml'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;policy;help'= {
            cand show 'Print the effective policy, every rule with where it came from'
            cand check 'Validate a policy file (default: the project''s .cage.toml)'
            cand init 'Write a starter .cage.toml in the working directory'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cage;policy;help;show'= {
        }
        &'cage;policy;help;check'= {
        }
        &'cage;policy;help;init'= {
        }
        &'cage;policy;help;help'= {
        }
        &'cage;explain'= {
            cand -p 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand --profile 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand -f 'Apply a policy file (trusted: you named it). Repeatable'
            cand --policy 'Apply a policy file (trusted: you named it). Repeatable'
            cand --ro 'Make PATH visible read-only'
            cand --rw 'Make PATH visible and writable'
            cand --hide 'Hide PATH even when a broader rule grants it'
            cand --allow-host 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)'
            cand --net 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)'
            cand --env 'Pass NAME from the environment, or set NAME=VALUE'
            cand --workspace 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly'
            cand --allow-degraded 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run'
            cand --allow-shared-dir 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one'
            cand --secret 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)'
            cand --no-project-policy 'Ignore the project''s .cage.toml'
            cand --no-auto-profile 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;trust'= {
            cand -y 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this'
            cand --yes 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;untrust'= {
            cand -y 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this'
            cand --yes 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;doctor'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;selftest'= {
            cand -p 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand --profile 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order'
            cand -f 'Apply a policy file (trusted: you named it). Repeatable'
            cand --policy 'Apply a policy file (trusted: you named it). Repeatable'
            cand --ro 'Make PATH visible read-only'
            cand --rw 'Make PATH visible and writable'
            cand --hide 'Hide PATH even when a broader rule grants it'
            cand --allow-host 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)'
            cand --net 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)'
            cand --env 'Pass NAME from the environment, or set NAME=VALUE'
            cand --workspace 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly'
            cand --allow-degraded 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run'
            cand --allow-shared-dir 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one'
            cand --secret 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)'
            cand --no-project-policy 'Ignore the project''s .cage.toml'
            cand --no-auto-profile 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)'
            cand --json 'Print the results as JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;shell-init'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;log'= {
            cand --since 'Every session running at or after TIME, newest first: an age (30m, 2h, 2d, 1w), a date (2026-12-01), a UTC time (2026-12-01T09:30), today or yesterday'
            cand --until 'Every session that started before TIME (as for --since)'
            cand --workspace 'Every session whose workspace is PATH or under it'
            cand --grep 'Only records holding WORD (ASCII case ignored), over every session (or the one named)'
            cand --json 'Print the records as JSON lines, as stored'
            cand -f 'Keep printing records as they are written, until the session ends'
            cand --follow 'Keep printing records as they are written, until the session ends'
            cand --denied 'Only denials: connections, DNS names, refused creations, lost records; each denied connection with the flag that allows it'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;allow'= {
            cand --for 'How long the rule lasts: 30s, 10m, 2h (default: the session)'
            cand --session 'The session (default: the running session of this workspace)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;deny'= {
            cand --session 'The session (default: the running session of this workspace)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;sessions'= {
            cand --keep 'With --prune: sessions kept per workspace (default 20, or CAGE_KEEP_SESSIONS)'
            cand --max-age 'With --prune: remove sessions older than DAYS (default 30, or CAGE_SESSION_MAX_DAYS; 0 for no age limit)'
            cand --prune 'Remove finished sessions beyond the newest --keep of each workspace and those older than --max-age days. Never removes a running session, one with changes not applied, or one holding quarantined files'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;diff'= {
            cand --color 'Colour the output: auto (on a terminal, unless NO_COLOR is set), always, never'
            cand --stat 'Show changed files with line counts instead of the diff'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;apply'= {
            cand --include-protected 'Apply this protected path too (repeat for each): protected paths (git config and hooks, .envrc, ...) are skipped otherwise'
            cand --force 'Overwrite files that changed on the host since the session started'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;discard'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;restore'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;man'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cage;help'= {
            cand run 'Run COMMAND caged (the same as `cage [OPTIONS] -- COMMAND`)'
            cand policy 'Show, check or start a policy'
            cand explain 'Say whether a path or host is allowed inside the cage, and which rule decides. Exit 0 when allowed, 1 when not'
            cand trust 'Trust a project policy file so it may widen access (pins its sha256)'
            cand untrust 'Forget the trust pinned for a project policy file'
            cand doctor 'Report what this host can enforce, what cage does about each gap, and whether `cage -- true` runs here (exit 1 if it cannot)'
            cand selftest 'Try to get out: build the plan a run here would get, against a throwaway copy of the workspace''s shape and a temporary home with planted decoys, run a battery of escape attempts inside it and print one line per attempt. Exit 0 when every attempt was blocked, 1 when any got through (EXPOSED), 125 when the test could not run'
            cand shell-init 'Print aliases that run the agents found on PATH caged, for your shell''s rc file: eval "$(cage shell-init bash)"'
            cand log 'Show a session''s audit log: its start, the enforcement achieved, every network and DNS decision, its end'
            cand allow 'Allow HOST[:PORT] in a running proxy session, from another terminal, for --for (default: the rest of the session). An audit record names who did it and when it expires'
            cand deny 'Deny HOST[:PORT] in a running proxy session (replacing a rule that `cage allow` added); an audit record names who did it'
            cand sessions 'List sessions: id, start time, status, the changes an overlay session holds, workspace and command. Every run prunes old sessions (see --prune); CAGE_KEEP_SESSIONS and CAGE_SESSION_MAX_DAYS change the defaults, 0 turning that rule off'
            cand diff 'Show an overlay session''s changes as a unified diff against the workspace: additions, modifications, deletions, modes, links and binary files; protected paths are flagged. For a direct session: the files it changed, git''s diff of the tracked ones, the others named'
            cand apply 'Land an overlay session''s changes in the workspace, each file replaced atomically. Refuses files changed on the host since the session started, unless --force. Safe to run again after an interruption'
            cand discard 'Remove an overlay session''s directory (its changes and its log), without asking'
            cand restore 'Put back a protected path that a session created and cage moved into the session''s quarantine. Never overwrites an existing file'
            cand completions 'Print shell completions for SHELL'
            cand man 'Print the man page (roff)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cage;help;run'= {
        }
        &'cage;help;policy'= {
            cand show 'Print the effective policy, every rule with where it came from'
            cand check 'Validate a policy file (default: the project''s .cage.toml)'
            cand init 'Write a starter .cage.toml in the working directory'
        }
        &'cage;help;policy;show'= {
        }
        &'cage;help;policy;check'= {
        }
        &'cage;help;policy;init'= {
        }
        &'cage;help;explain'= {
        }
        &'cage;help;trust'= {
        }
        &'cage;help;untrust'= {
        }
        &'cage;help;doctor'= {
        }
        &'cage;help;selftest'= {
        }
        &'cage;help;shell-init'= {
        }
        &'cage;help;log'= {
        }
        &'cage;help;allow'= {
        }
        &'cage;help;deny'= {
        }
        &'cage;help;sessions'= {
        }
        &'cage;help;diff'= {
        }
        &'cage;help;apply'= {
        }
        &'cage;help;discard'= {
        }
        &'cage;help;restore'= {
        }
        &'cage;help;completions'= {
        }
        &'cage;help;man'= {
        }
        &'cage;help;help'= {
        }
    ]
    $completions[$command]
}
