//! Capabilities (placeholder until the filter branch lands).

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("dropping capabilities")]
    Drop(#[source] std::io::Error),
}

pub fn drop_all() -> Result<(), CapsError> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| CapsError::Drop(e.into()))
}
