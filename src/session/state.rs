//! Agents' state directories on the host side: created before the run,
//! their session layers made, and their write-through files copied back
//! when the session ends.
//!
//! The plan decides everything (which directories, which paths write
//! through); this only performs it, before clone and after the cage is
//! gone, when no process of the session can race it.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::plan::{CreateDir, Plan, StatePlan};
use crate::policy::{Setting, StateSettings};

/// A write-through file larger than this stays in the session (a login or
/// a history file is far smaller).
const MAX_FILE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("creating {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} must be a directory for cage to create or hide it, but something else is \
         there"
    )]
    NotDir { path: PathBuf },
}

/// `~/x` for a path below the home directory, for messages.
fn tilde(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) => format!("~/{}", rest.display()),
        Err(_) => path.display().to_string(),
    }
}

/// Before the run: the directories the plan creates (each said once on
/// stderr when it has a purpose), and every state directory's upper and
/// work directories in the session's directory.
pub fn prepare(plan: &Plan, home: &Path) -> Result<(), StateError> {
    for CreateDir { path, about, .. } in &plan.create {
        match path.symlink_metadata() {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => return Err(StateError::NotDir { path: path.clone() }),
            Err(_) => {}
        }
        mkdir(path)?;
        if let Some(about) = about {
            eprintln!("cage: created {} for {about}", tilde(path, home));
        }
    }
    for s in &plan.state {
        for d in [&s.upper, &s.work] {
            mkdir(d)?;
        }
        for set in &s.settings {
            // Before the overlay exists, so nothing in the session races it.
            if let Err(why) = write_settings(s, set) {
                crate::term::emit(&crate::term::escape_text(&format!(
                    "cage: warning: {} is not changed for the session ({why}); the agent sees \
                     the host's",
                    tilde(&s.dir.join(&set.file), home)
                )));
            }
        }
    }
    Ok(())
}

/// The session's private copy of one settings file: the host's content
/// (the overlay's lower layer) with the plan's values set, written into the
/// upper layer, where the overlay shows it instead of the host's. The
/// host's file is never written; a link is not followed (its target may be
/// a path the cage hides), and a file that does not parse is left alone.
fn write_settings(s: &StatePlan, set: &StateSettings) -> Result<(), String> {
    let host = s.lower.join(&set.file);
    let text = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&host)
    {
        Ok(f) => {
            let meta = f.metadata().map_err(|e| format!("reading it: {e}"))?;
            if !meta.is_file() {
                return Err("it is not a regular file".into());
            }
            let mut text = String::new();
            f.take(MAX_FILE)
                .read_to_string(&mut text)
                .map_err(|e| format!("reading it: {e}"))?;
            text
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err("it is a symbolic link".into());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("opening it: {e}")),
    };
    let is_json = set.file.extension().is_some_and(|e| e == "json");
    let out = if is_json {
        let mut doc: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(&text).map_err(|e| format!("it is not JSON: {e}"))?
        };
        for (key, value) in &set.values {
            set_json(&mut doc, key, value);
        }
        let mut out = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        out.push('\n');
        out
    } else {
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| format!("it is not TOML: {}", e.message()))?;
        for (key, value) in &set.values {
            set_toml(&mut doc, key, value);
        }
        toml::to_string(&doc).map_err(|e| e.to_string())?
    };
    let copy = s.upper.join(&set.file);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&copy)
        .and_then(|mut f| f.write_all(out.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", copy.display()))
}

fn set_toml(doc: &mut toml::Table, key: &[String], value: &Setting) {
    let Some((last, parents)) = key.split_last() else {
        return;
    };
    let mut table = doc;
    for k in parents {
        let entry = table
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = entry else {
            return;
        };
        table = t;
    }
    let v = match value {
        Setting::Bool(b) => toml::Value::Boolean(*b),
        Setting::Int(i) => toml::Value::Integer(*i),
        Setting::Text(s) => toml::Value::String(s.clone()),
    };
    table.insert(last.clone(), v);
}

fn set_json(doc: &mut serde_json::Value, key: &[String], value: &Setting) {
    let mut node = doc;
    for k in key {
        if !node.is_object() {
            *node = serde_json::Value::Object(Default::default());
        }
        let serde_json::Value::Object(map) = node else {
            return;
        };
        node = map.entry(k.clone()).or_insert(serde_json::Value::Null);
    }
    *node = match value {
        Setting::Bool(b) => serde_json::Value::Bool(*b),
        Setting::Int(i) => serde_json::Value::from(*i),
        Setting::Text(s) => serde_json::Value::String(s.clone()),
    };
}

fn mkdir(path: &Path) -> Result<(), StateError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StateError::Create {
            path: path.to_path_buf(),
            source,
        })
}

/// After the run: each write-through file the session wrote (it is in the
/// upper layer) replaces the host's, atomically and without execute bits;
/// one it deleted (a whiteout) is removed on the host. Returns what was
/// copied, and one warning per file left in the session.
pub fn harvest(plan: &Plan) -> (Vec<PathBuf>, Vec<String>) {
    let mut copied = Vec::new();
    let mut warnings = Vec::new();
    for s in &plan.state {
        for rel in &s.files {
            match harvest_one(s, rel) {
                Ok(true) => copied.push(s.dir.join(rel)),
                Ok(false) => {}
                Err(why) => warnings.push(format!(
                    "{} was not written back to the host: {why}; the session's copy is in {}",
                    s.dir.join(rel).display(),
                    s.upper.join(rel).display()
                )),
            }
        }
    }
    (copied, warnings)
}

fn harvest_one(s: &StatePlan, rel: &Path) -> Result<bool, String> {
    let up = s.upper.join(rel);
    let meta = match up.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("reading {}: {e}", up.display())),
    };
    let dst = s.lower.join(rel);
    let parent = dst.parent().ok_or("it has no parent directory")?;
    if parent.symlink_metadata().is_err() {
        mkdir(parent).map_err(|e| format!("{e}: {}", crate::error::chain(&e)))?;
    }
    // The host directory must be the plain one the plan named: a link
    // planted in a write-through directory must not redirect the copy.
    if crate::host::canonical(parent).ok().as_deref() != Some(parent) {
        return Err(format!("{} is not a plain directory", parent.display()));
    }
    let ft = meta.file_type();
    if ft.is_char_device() && meta.rdev() == 0 {
        // An overlayfs whiteout: the session deleted the file.
        return match fs::remove_file(&dst) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("removing {}: {e}", dst.display())),
        };
    }
    if !ft.is_file() {
        return Err("the session left something other than a regular file".to_string());
    }
    if meta.len() > MAX_FILE {
        return Err(format!("it is larger than {} MiB", MAX_FILE >> 20));
    }
    let mut contents = Vec::new();
    fs::File::open(&up)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut contents))
        .map_err(|e| format!("reading {}: {e}", up.display()))?;
    let name = dst.file_name().ok_or("it has no file name")?;
    let tmp = parent.join(format!(
        ".{}.cage-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode((meta.mode() & 0o666) | 0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(&contents)?;
        f.sync_all()?;
        fs::rename(&tmp, &dst)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("writing {}: {e}", dst.display())
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::policy::Provenance;

    struct Dirs(PathBuf);

    impl Dirs {
        fn new(name: &str) -> Dirs {
            let root =
                std::env::temp_dir().join(format!("cage-settings-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            for d in ["lower", "upper"] {
                fs::create_dir_all(root.join(d)).unwrap();
            }
            Dirs(root)
        }
        fn plan(&self) -> StatePlan {
            StatePlan {
                dir: self.0.join("lower"),
                lower: self.0.join("lower"),
                upper: self.0.join("upper"),
                work: self.0.join("work"),
                live: vec![],
                files: vec![],
                settings: vec![],
                masked: vec![],
                source: Provenance::Default { what: "test" },
            }
        }
    }

    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn set(file: &str, key: &[&str], value: Setting) -> StateSettings {
        StateSettings {
            file: file.into(),
            values: vec![(key.iter().map(|k| k.to_string()).collect(), value)],
        }
    }

    #[test]
    fn toml_copy_keeps_the_hosts_values_and_overrides_the_setting() {
        let d = Dirs::new("toml");
        let host = "model = \"o9\"\nsandbox_mode = \"workspace-write\"\n[mcp_servers.x]\ncommand = \"y\"\n";
        fs::write(d.0.join("lower/config.toml"), host).unwrap();
        let s = set(
            "config.toml",
            &["sandbox_mode"],
            Setting::Text("danger-full-access".into()),
        );
        write_settings(&d.plan(), &s).unwrap();
        let copy: toml::Table = fs::read_to_string(d.0.join("upper/config.toml"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(copy["sandbox_mode"].as_str(), Some("danger-full-access"));
        assert_eq!(copy["model"].as_str(), Some("o9"));
        assert_eq!(copy["mcp_servers"]["x"]["command"].as_str(), Some("y"));
        assert_eq!(
            fs::read_to_string(d.0.join("lower/config.toml")).unwrap(),
            host
        );
    }

    #[test]
    fn json_copy_sets_a_nested_key_and_a_missing_file_gets_only_the_settings() {
        let d = Dirs::new("json");
        fs::write(
            d.0.join("lower/settings.json"),
            "{\"sandbox\": {\"enabled\": true, \"failIfUnavailable\": true}, \"theme\": \"dark\"}",
        )
        .unwrap();
        let s = set(
            "settings.json",
            &["sandbox", "enabled"],
            Setting::Bool(false),
        );
        write_settings(&d.plan(), &s).unwrap();
        let copy: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(d.0.join("upper/settings.json")).unwrap())
                .unwrap();
        assert_eq!(copy["sandbox"]["enabled"], false);
        assert_eq!(copy["sandbox"]["failIfUnavailable"], true);
        assert_eq!(copy["theme"], "dark");
        let s = set("new.json", &["a", "b"], Setting::Int(3));
        write_settings(&d.plan(), &s).unwrap();
        let copy: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(d.0.join("upper/new.json")).unwrap()).unwrap();
        assert_eq!(copy, serde_json::json!({"a": {"b": 3}}));
    }

    #[test]
    fn links_and_unparsable_files_are_left_alone() {
        let d = Dirs::new("links");
        fs::write(d.0.join("secret"), "sandbox_mode = \"x\"\n").unwrap();
        std::os::unix::fs::symlink(d.0.join("secret"), d.0.join("lower/config.toml")).unwrap();
        fs::write(d.0.join("lower/bad.toml"), "this is = = not toml").unwrap();
        let plan = d.plan();
        let why = write_settings(&plan, &set("config.toml", &["a"], Setting::Bool(true)));
        assert!(why.unwrap_err().contains("symbolic link"));
        let why = write_settings(&plan, &set("bad.toml", &["a"], Setting::Bool(true)));
        assert!(why.unwrap_err().contains("not TOML"));
        assert!(!d.0.join("upper/config.toml").exists());
        assert!(!d.0.join("upper/bad.toml").exists());
    }
}
