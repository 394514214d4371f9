//! Protected paths: execution-bearing files kept read-only in the workspace.

/// DESIGN.md's built-in protected set.
pub const BUILTIN_PROTECTED: &[&str] = &[
    ".git/hooks",
    ".git/config",
    ".git/info",
    ".gitmodules",
    ".envrc",
    ".vscode",
    ".idea",
    ".cage.toml",
];

pub fn find_protected() {}
