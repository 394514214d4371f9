
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'cage' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'cage'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'cage' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--ro', '--ro', [CompletionResultType]::ParameterName, 'Make PATH visible read-only')
            [CompletionResult]::new('--rw', '--rw', [CompletionResultType]::ParameterName, 'Make PATH visible and writable')
            [CompletionResult]::new('--hide', '--hide', [CompletionResultType]::ParameterName, 'Hide PATH even when a broader rule grants it')
            [CompletionResult]::new('--allow-host', '--allow-host', [CompletionResultType]::ParameterName, 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)')
            [CompletionResult]::new('--net', '--net', [CompletionResultType]::ParameterName, 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Pass NAME from the environment, or set NAME=VALUE')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly')
            [CompletionResult]::new('--allow-degraded', '--allow-degraded', [CompletionResultType]::ParameterName, 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run')
            [CompletionResult]::new('--allow-shared-dir', '--allow-shared-dir', [CompletionResultType]::ParameterName, 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)')
            [CompletionResult]::new('--no-project-policy', '--no-project-policy', [CompletionResultType]::ParameterName, 'Ignore the project''s .cage.toml')
            [CompletionResult]::new('--no-auto-profile', '--no-auto-profile', [CompletionResultType]::ParameterName, 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the plan (what cage would do) and exit without running')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'With --dry-run: print the plan as JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run COMMAND caged (the same as `cage [OPTIONS] -- COMMAND`)')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Show, check or start a policy')
            [CompletionResult]::new('explain', 'explain', [CompletionResultType]::ParameterValue, 'Say whether a path or host is allowed inside the cage, and which rule decides. Exit 0 when allowed, 1 when not')
            [CompletionResult]::new('trust', 'trust', [CompletionResultType]::ParameterValue, 'Trust a project policy file so it may widen access (pins its sha256)')
            [CompletionResult]::new('untrust', 'untrust', [CompletionResultType]::ParameterValue, 'Forget the trust pinned for a project policy file')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Report what this host can enforce, what cage does about each gap, and whether `cage -- true` runs here (exit 1 if it cannot)')
            [CompletionResult]::new('selftest', 'selftest', [CompletionResultType]::ParameterValue, 'Try to get out: build the plan a run here would get, against a throwaway copy of the workspace''s shape and a temporary home with planted decoys, run a battery of escape attempts inside it and print one line per attempt. Exit 0 when every attempt was blocked, 1 when any got through (EXPOSED), 125 when the test could not run')
            [CompletionResult]::new('shell-init', 'shell-init', [CompletionResultType]::ParameterValue, 'Print aliases that run the agents found on PATH caged, for your shell''s rc file: eval "$(cage shell-init bash)"')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Show a session''s audit log: its start, the enforcement achieved, every network and DNS decision, its end')
            [CompletionResult]::new('allow', 'allow', [CompletionResultType]::ParameterValue, 'Allow HOST[:PORT] in a running proxy session, from another terminal, for --for (default: the rest of the session). An audit record names who did it and when it expires')
            [CompletionResult]::new('deny', 'deny', [CompletionResultType]::ParameterValue, 'Deny HOST[:PORT] in a running proxy session (replacing a rule that `cage allow` added); an audit record names who did it')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'List sessions: id, start time, status, the changes an overlay session holds, workspace and command. Every run prunes old sessions (see --prune); CAGE_KEEP_SESSIONS and CAGE_SESSION_MAX_DAYS change the defaults, 0 turning that rule off')
            [CompletionResult]::new('diff', 'diff', [CompletionResultType]::ParameterValue, 'Show an overlay session''s changes as a unified diff against the workspace: additions, modifications, deletions, modes, links and binary files; protected paths are flagged. For a direct session: the files it changed, git''s diff of the tracked ones, the others named')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Land an overlay session''s changes in the workspace, each file replaced atomically. Refuses files changed on the host since the session started, unless --force. Safe to run again after an interruption')
            [CompletionResult]::new('discard', 'discard', [CompletionResultType]::ParameterValue, 'Remove an overlay session''s directory (its changes and its log), without asking')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Put back a protected path that a session created and cage moved into the session''s quarantine. Never overwrites an existing file')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions for SHELL')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cage;run' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--ro', '--ro', [CompletionResultType]::ParameterName, 'Make PATH visible read-only')
            [CompletionResult]::new('--rw', '--rw', [CompletionResultType]::ParameterName, 'Make PATH visible and writable')
            [CompletionResult]::new('--hide', '--hide', [CompletionResultType]::ParameterName, 'Hide PATH even when a broader rule grants it')
            [CompletionResult]::new('--allow-host', '--allow-host', [CompletionResultType]::ParameterName, 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)')
            [CompletionResult]::new('--net', '--net', [CompletionResultType]::ParameterName, 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Pass NAME from the environment, or set NAME=VALUE')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly')
            [CompletionResult]::new('--allow-degraded', '--allow-degraded', [CompletionResultType]::ParameterName, 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run')
            [CompletionResult]::new('--allow-shared-dir', '--allow-shared-dir', [CompletionResultType]::ParameterName, 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)')
            [CompletionResult]::new('--no-project-policy', '--no-project-policy', [CompletionResultType]::ParameterName, 'Ignore the project''s .cage.toml')
            [CompletionResult]::new('--no-auto-profile', '--no-auto-profile', [CompletionResultType]::ParameterName, 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the plan (what cage would do) and exit without running')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'With --dry-run: print the plan as JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;policy' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective policy, every rule with where it came from')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate a policy file (default: the project''s .cage.toml)')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write a starter .cage.toml in the working directory')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cage;policy;show' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--ro', '--ro', [CompletionResultType]::ParameterName, 'Make PATH visible read-only')
            [CompletionResult]::new('--rw', '--rw', [CompletionResultType]::ParameterName, 'Make PATH visible and writable')
            [CompletionResult]::new('--hide', '--hide', [CompletionResultType]::ParameterName, 'Hide PATH even when a broader rule grants it')
            [CompletionResult]::new('--allow-host', '--allow-host', [CompletionResultType]::ParameterName, 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)')
            [CompletionResult]::new('--net', '--net', [CompletionResultType]::ParameterName, 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Pass NAME from the environment, or set NAME=VALUE')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly')
            [CompletionResult]::new('--allow-degraded', '--allow-degraded', [CompletionResultType]::ParameterName, 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run')
            [CompletionResult]::new('--allow-shared-dir', '--allow-shared-dir', [CompletionResultType]::ParameterName, 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)')
            [CompletionResult]::new('--no-project-policy', '--no-project-policy', [CompletionResultType]::ParameterName, 'Ignore the project''s .cage.toml')
            [CompletionResult]::new('--no-auto-profile', '--no-auto-profile', [CompletionResultType]::ParameterName, 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;policy;check' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;policy;init' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'A profile for the file to extend (for example `claude`)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'A profile for the file to extend (for example `claude`)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite an existing .cage.toml')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;policy;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective policy, every rule with where it came from')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate a policy file (default: the project''s .cage.toml)')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write a starter .cage.toml in the working directory')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cage;policy;help;show' {
            break
        }
        'cage;policy;help;check' {
            break
        }
        'cage;policy;help;init' {
            break
        }
        'cage;policy;help;help' {
            break
        }
        'cage;explain' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--ro', '--ro', [CompletionResultType]::ParameterName, 'Make PATH visible read-only')
            [CompletionResult]::new('--rw', '--rw', [CompletionResultType]::ParameterName, 'Make PATH visible and writable')
            [CompletionResult]::new('--hide', '--hide', [CompletionResultType]::ParameterName, 'Hide PATH even when a broader rule grants it')
            [CompletionResult]::new('--allow-host', '--allow-host', [CompletionResultType]::ParameterName, 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)')
            [CompletionResult]::new('--net', '--net', [CompletionResultType]::ParameterName, 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Pass NAME from the environment, or set NAME=VALUE')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly')
            [CompletionResult]::new('--allow-degraded', '--allow-degraded', [CompletionResultType]::ParameterName, 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run')
            [CompletionResult]::new('--allow-shared-dir', '--allow-shared-dir', [CompletionResultType]::ParameterName, 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)')
            [CompletionResult]::new('--no-project-policy', '--no-project-policy', [CompletionResultType]::ParameterName, 'Ignore the project''s .cage.toml')
            [CompletionResult]::new('--no-auto-profile', '--no-auto-profile', [CompletionResultType]::ParameterName, 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;trust' {
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;untrust' {
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Trust without asking (for scripts). On a terminal, cage shows what the file widens and asks first; elsewhere it refuses without this')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;doctor' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;selftest' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Apply a profile (built-in or ~/.config/cage/profiles/NAME.toml). Repeatable; applied in order')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Apply a policy file (trusted: you named it). Repeatable')
            [CompletionResult]::new('--ro', '--ro', [CompletionResultType]::ParameterName, 'Make PATH visible read-only')
            [CompletionResult]::new('--rw', '--rw', [CompletionResultType]::ParameterName, 'Make PATH visible and writable')
            [CompletionResult]::new('--hide', '--hide', [CompletionResultType]::ParameterName, 'Hide PATH even when a broader rule grants it')
            [CompletionResult]::new('--allow-host', '--allow-host', [CompletionResultType]::ParameterName, 'Allow connections to a host: NAME, *.SUFFIX, IP or CIDR, with an optional :PORT or :* (no port means 443 and 80)')
            [CompletionResult]::new('--net', '--net', [CompletionResultType]::ParameterName, 'Network: none (loopback only), proxy (allowed hosts), host (no network isolation)')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Pass NAME from the environment, or set NAME=VALUE')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace mode: direct (writes land), overlay (writes reviewed later), readonly')
            [CompletionResult]::new('--allow-degraded', '--allow-degraded', [CompletionResultType]::ParameterName, 'Run even if the kernel cannot enforce LAYER: landlock (run with what Landlock the kernel has), namespaces (when user namespaces cannot be created, run the graded mode: Landlock and seccomp on the host''s file tree, --net none or proxy). cage says so on every run')
            [CompletionResult]::new('--allow-shared-dir', '--allow-shared-dir', [CompletionResultType]::ParameterName, 'Accept PATH as the workspace or a --ro/--rw grant although it is a directory other programs share sockets in (/tmp, /var/tmp, /dev/shm, /run, $XDG_RUNTIME_DIR) or a parent of one')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Keep the host''s VAR out of the cage: inside, VAR holds a random placeholder of the same shape, and cage''s proxy swaps the real value in only on HTTPS requests to HOST (which this also allows)')
            [CompletionResult]::new('--no-project-policy', '--no-project-policy', [CompletionResultType]::ParameterName, 'Ignore the project''s .cage.toml')
            [CompletionResult]::new('--no-auto-profile', '--no-auto-profile', [CompletionResultType]::ParameterName, 'Without -p, do not apply the profile named after the command (`cage -- claude` otherwise applies the claude profile)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the results as JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;shell-init' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;log' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Every session running at or after TIME, newest first: an age (30m, 2h, 2d, 1w), a date (2026-12-01), a UTC time (2026-12-01T09:30), today or yesterday')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Every session that started before TIME (as for --since)')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Every session whose workspace is PATH or under it')
            [CompletionResult]::new('--grep', '--grep', [CompletionResultType]::ParameterName, 'Only records holding WORD (ASCII case ignored), over every session (or the one named)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the records as JSON lines, as stored')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Keep printing records as they are written, until the session ends')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'Keep printing records as they are written, until the session ends')
            [CompletionResult]::new('--denied', '--denied', [CompletionResultType]::ParameterName, 'Only denials: connections, DNS names, refused creations, lost records; each denied connection with the flag that allows it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;allow' {
            [CompletionResult]::new('--for', '--for', [CompletionResultType]::ParameterName, 'How long the rule lasts: 30s, 10m, 2h (default: the session)')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'The session (default: the running session of this workspace)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;deny' {
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'The session (default: the running session of this workspace)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;sessions' {
            [CompletionResult]::new('--keep', '--keep', [CompletionResultType]::ParameterName, 'With --prune: sessions kept per workspace (default 20, or CAGE_KEEP_SESSIONS)')
            [CompletionResult]::new('--max-age', '--max-age', [CompletionResultType]::ParameterName, 'With --prune: remove sessions older than DAYS (default 30, or CAGE_SESSION_MAX_DAYS; 0 for no age limit)')
            [CompletionResult]::new('--prune', '--prune', [CompletionResultType]::ParameterName, 'Remove finished sessions beyond the newest --keep of each workspace and those older than --max-age days. Never removes a running session, one with changes not applied, or one holding quarantined files')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;diff' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour the output: auto (on a terminal, unless NO_COLOR is set), always, never')
            [CompletionResult]::new('--stat', '--stat', [CompletionResultType]::ParameterName, 'Show changed files with line counts instead of the diff')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;apply' {
            [CompletionResult]::new('--include-protected', '--include-protected', [CompletionResultType]::ParameterName, 'Apply this protected path too (repeat for each): protected paths (git config and hooks, .envrc, ...) are skipped otherwise')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite files that changed on the host since the session started')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;discard' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;restore' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;man' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cage;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run COMMAND caged (the same as `cage [OPTIONS] -- COMMAND`)')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Show, check or start a policy')
            [CompletionResult]::new('explain', 'explain', [CompletionResultType]::ParameterValue, 'Say whether a path or host is allowed inside the cage, and which rule decides. Exit 0 when allowed, 1 when not')
            [CompletionResult]::new('trust', 'trust', [CompletionResultType]::ParameterValue, 'Trust a project policy file so it may widen access (pins its sha256)')
            [CompletionResult]::new('untrust', 'untrust', [CompletionResultType]::ParameterValue, 'Forget the trust pinned for a project policy file')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Report what this host can enforce, what cage does about each gap, and whether `cage -- true` runs here (exit 1 if it cannot)')
            [CompletionResult]::new('selftest', 'selftest', [CompletionResultType]::ParameterValue, 'Try to get out: build the plan a run here would get, against a throwaway copy of the workspace''s shape and a temporary home with planted decoys, run a battery of escape attempts inside it and print one line per attempt. Exit 0 when every attempt was blocked, 1 when any got through (EXPOSED), 125 when the test could not run')
            [CompletionResult]::new('shell-init', 'shell-init', [CompletionResultType]::ParameterValue, 'Print aliases that run the agents found on PATH caged, for your shell''s rc file: eval "$(cage shell-init bash)"')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Show a session''s audit log: its start, the enforcement achieved, every network and DNS decision, its end')
            [CompletionResult]::new('allow', 'allow', [CompletionResultType]::ParameterValue, 'Allow HOST[:PORT] in a running proxy session, from another terminal, for --for (default: the rest of the session). An audit record names who did it and when it expires')
            [CompletionResult]::new('deny', 'deny', [CompletionResultType]::ParameterValue, 'Deny HOST[:PORT] in a running proxy session (replacing a rule that `cage allow` added); an audit record names who did it')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'List sessions: id, start time, status, the changes an overlay session holds, workspace and command. Every run prunes old sessions (see --prune); CAGE_KEEP_SESSIONS and CAGE_SESSION_MAX_DAYS change the defaults, 0 turning that rule off')
            [CompletionResult]::new('diff', 'diff', [CompletionResultType]::ParameterValue, 'Show an overlay session''s changes as a unified diff against the workspace: additions, modifications, deletions, modes, links and binary files; protected paths are flagged. For a direct session: the files it changed, git''s diff of the tracked ones, the others named')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Land an overlay session''s changes in the workspace, each file replaced atomically. Refuses files changed on the host since the session started, unless --force. Safe to run again after an interruption')
            [CompletionResult]::new('discard', 'discard', [CompletionResultType]::ParameterValue, 'Remove an overlay session''s directory (its changes and its log), without asking')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Put back a protected path that a session created and cage moved into the session''s quarantine. Never overwrites an existing file')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions for SHELL')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cage;help;run' {
            break
        }
        'cage;help;policy' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective policy, every rule with where it came from')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate a policy file (default: the project''s .cage.toml)')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write a starter .cage.toml in the working directory')
            break
        }
        'cage;help;policy;show' {
            break
        }
        'cage;help;policy;check' {
            break
        }
        'cage;help;policy;init' {
            break
        }
        'cage;help;explain' {
            break
        }
        'cage;help;trust' {
            break
        }
        'cage;help;untrust' {
            break
        }
        'cage;help;doctor' {
            break
        }
        'cage;help;selftest' {
            break
        }
        'cage;help;shell-init' {
            break
        }
        'cage;help;log' {
            break
        }
        'cage;help;allow' {
            break
        }
        'cage;help;deny' {
            break
        }
        'cage;help;sessions' {
            break
        }
        'cage;help;diff' {
            break
        }
        'cage;help;apply' {
            break
        }
        'cage;help;discard' {
            break
        }
        'cage;help;restore' {
            break
        }
        'cage;help;completions' {
            break
        }
        'cage;help;man' {
            break
        }
        'cage;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
