//! Schema 1: the serde shape of a policy file, exactly as written.
//!
//! Every table denies unknown keys, so a misspelling is an error with the
//! list of valid keys, never a silently ignored rule. Every entry is
//! wrapped in [`Spanned`] so the parser can name its line. Nothing here
//! resolves or validates values beyond their TOML type: `parse` does that,
//! with the span in hand for the error message.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use toml::Spanned;

use super::{Layer, NetMode, WorkspaceMode};

/// A whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a policy table")]
pub(crate) struct File {
    #[serde(default)]
    pub extends: Vec<Spanned<String>>,
    pub workspace: Option<Workspace>,
    pub filesystem: Option<Filesystem>,
    pub network: Option<Network>,
    pub env: Option<Env>,
    pub limits: Option<Limits>,
    pub process: Option<Process>,
    pub security: Option<Security>,
    /// `[secrets.NAME]` tables; a map loses the file's order, `parse`
    /// restores it from the spans.
    #[serde(default)]
    pub secrets: BTreeMap<Spanned<String>, Spanned<Secret>>,
}

/// One `[secrets.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"a secret: { from = "env:VAR" | "file:PATH" | "cmd:COMMAND ARGS" | "json:PATH#/POINTER", env = "VAR", hosts = ["api.example.com"] }"#
)]
pub(crate) struct Secret {
    pub from: Spanned<String>,
    pub env: Option<Spanned<String>>,
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// Hosts among `hosts` the proxy must not terminate (clients that pin
    /// certificates or use mTLS): their connections stay tunnels.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// Swap the placeholder in request bodies too (APIs that take the key
    /// in a JSON body or a form), not only in header values.
    pub body: Option<Spanned<bool>>,
    /// Skipped, not an error, when the source does not exist (an unset
    /// variable, a missing file): how profiles offer a secret.
    pub optional: Option<Spanned<bool>>,
    /// A `json:` source's file is shown to the cage as a private copy with
    /// the placeholder in the value's place.
    pub mask: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the [workspace] table")]
pub(crate) struct Workspace {
    pub path: Option<Spanned<String>>,
    pub mode: Option<Spanned<WorkspaceMode>>,
    #[serde(default)]
    pub protect: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the [filesystem] table")]
pub(crate) struct Filesystem {
    #[serde(default)]
    pub read: Vec<Spanned<String>>,
    #[serde(default)]
    pub write: Vec<Spanned<String>>,
    #[serde(default)]
    pub hide: Vec<Spanned<String>>,
    #[serde(default)]
    pub tmpfs: Vec<Spanned<String>>,
    #[serde(default)]
    pub copy: Vec<Spanned<String>>,
    #[serde(default)]
    pub state: Vec<Spanned<StateDir>>,
}

/// An agent's state directory: private to the session except `keep`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"a state directory: { dir = "~/.agent", keep = ["login.json", "history/"], about = "..." }"#
)]
pub(crate) struct StateDir {
    pub dir: Spanned<String>,
    #[serde(default)]
    pub keep: Vec<Spanned<String>>,
    pub about: Option<Spanned<String>>,
    /// Values the session's private copy of a settings file in the
    /// directory gets: `{ "config.toml" = { sandbox_mode = "..." } }`.
    #[serde(default)]
    pub settings: Option<Spanned<std::collections::BTreeMap<String, toml::Table>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the [network] table")]
pub(crate) struct Network {
    pub mode: Option<Spanned<NetMode>>,
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the [env] table")]
pub(crate) struct Env {
    #[serde(default)]
    pub pass: Vec<Spanned<String>>,
    /// A map loses the file's order; `parse` restores it from the spans.
    #[serde(default)]
    pub set: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the [limits] table")]
pub(crate) struct Limits {
    pub nofile: Option<Spanned<Count>>,
    pub nproc: Option<Spanned<Count>>,
    pub fsize: Option<Spanned<Size>>,
    pub memory: Option<Spanned<Size>>,
    pub pids: Option<Spanned<Count>>,
    pub cpu: Option<Spanned<Count>>,
    pub required: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the [process] table")]
pub(crate) struct Process {
    pub allow_ptrace: Option<Spanned<bool>>,
    pub allow_nested_userns: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the [security] table")]
pub(crate) struct Security {
    #[serde(default)]
    pub allow_degraded: Vec<Spanned<Layer>>,
}

/// A non-negative integer. Its own type so a negative or fractional value
/// reads "expected a non-negative integer" instead of "expected u64".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size as written: bytes as an integer, or a string with a unit
/// (`"512M"`), parsed later so the error can point at it.
#[derive(Clone, Debug)]
pub(crate) enum Size {
    Bytes(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a size: a number of bytes, or a string like "512M" or "8G""#)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size::Bytes)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Ok(Size::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
