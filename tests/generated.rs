//! The committed man page and completions must match what the CLI
//! definition generates. Regenerate with `CAGE_REGENERATE=1 cargo test
//! --test generated`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use clap_complete::Shell;

fn check(path: &str, fresh: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("CAGE_REGENERATE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: run `CAGE_REGENERATE=1 cargo test --test generated` and commit it",
        path.display()
    );
}

#[test]
fn man_page_is_fresh() {
    check("man/cage.1", &cage::cli::man_page().unwrap());
}

#[test]
fn completions_are_fresh() {
    for (shell, file) in [
        (Shell::Bash, "completions/cage.bash"),
        (Shell::Zsh, "completions/_cage"),
        (Shell::Fish, "completions/cage.fish"),
        (Shell::Elvish, "completions/cage.elv"),
        (Shell::PowerShell, "completions/_cage.ps1"),
    ] {
        check(file, &cage::cli::completions(shell));
    }
}
