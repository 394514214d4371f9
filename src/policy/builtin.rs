//! The built-in profiles (`policies/*.toml`, embedded in the binary) and
//! the starter `.cage.toml` that `cage policy init` writes.

/// Name and text of every built-in profile, sorted by name.
const BUILTINS: &[(&str, &str)] = &[
    ("aider", include_str!("../../policies/aider.toml")),
    ("base", include_str!("../../policies/base.toml")),
    ("claude", include_str!("../../policies/claude.toml")),
    ("codex", include_str!("../../policies/codex.toml")),
    ("gemini", include_str!("../../policies/gemini.toml")),
    ("git", include_str!("../../policies/git.toml")),
    ("go", include_str!("../../policies/go.toml")),
    ("node", include_str!("../../policies/node.toml")),
    ("python", include_str!("../../policies/python.toml")),
    ("rust", include_str!("../../policies/rust.toml")),
];

/// The names of the built-in profiles, sorted.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(name, _)| *name).collect()
}

/// The TOML text of a built-in profile.
pub fn builtin_source(name: &str) -> Option<&'static str> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// A commented `.cage.toml` to start from, extending `extends` (a chosen
/// agent profile and the toolchains detected in the project).
/// Everything else is commented out, so the file as written only narrows
/// (apart from `extends`, which `cage trust` must allow).
pub fn starter_policy(extends: &[&str]) -> String {
    let extends = match extends {
        [] => {
            "# extends = [\"claude\"]   # a profile to build on (needs `cage trust`)\n".to_string()
        }
        names => format!(
            "# The profiles this project is meant to run with. Extending a profile that\n\
             # the command line did not already select widens the sandbox, so cage asks\n\
             # you to run `cage trust` for this file first.\n\
             extends = [{}]\n",
            names
                .iter()
                .map(|n| toml_string(n))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "# cage policy for this project (schema 1).\n\
         #\n\
         # cage applies, lowest first: its built-in `base` profile, your\n\
         # ~/.config/cage/config.toml, `-p` profiles, this file, `-f` files, then flags.\n\
         # Until you run `cage trust` on it, this file may only narrow the sandbox:\n\
         # hide more, protect more, deny hosts, choose a stricter workspace mode.\n\
         # Paths may start with `~`; a leading `?` means \"skip if missing\"; relative\n\
         # paths are relative to this file. `cage policy show` prints the result.\n\
         \n\
         {extends}\
         \n\
         [workspace]\n\
         # mode = \"overlay\"         # direct | overlay | readonly; overlay keeps the\n\
         #                          # agent's changes aside for `cage diff` / `cage apply`\n\
         # Files the agent may read but never change, at any depth (added to cage's\n\
         # own list: .git/hooks, .git/config, .envrc, .vscode, ...).\n\
         protect = []\n\
         \n\
         [filesystem]\n\
         # Secrets inside the project that the agent must not see.\n\
         hide = []                  # e.g. [\".env\", \"secrets/\"]\n\
         # read = [\"?../shared-docs\"]   # outside the project: needs `cage trust`\n\
         \n\
         [network]\n\
         # Hosts the agent must not reach, even if a profile allows them.\n\
         deny = []\n\
         # allow = [\"api.example.com\"]   # needs `cage trust`\n\
         \n\
         [env]\n\
         # Fixed values for the agent's environment.\n\
         set = {{}}\n\
         # pass = [\"MY_TOKEN\"]            # host variables: needs `cage trust`\n\
         \n\
         # [limits]\n\
         # memory = \"8G\"\n\
         # pids = 1024\n"
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
