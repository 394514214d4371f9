//! seccomp (placeholder until the filter branch lands).

use crate::plan::SeccompPlan;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp")]
    Todo,
}

pub fn build_filters(_plan: &SeccompPlan) -> Result<Vec<seccompiler::BpfProgram>, SeccompError> {
    Ok(vec![])
}

pub fn install(_filters: &[seccompiler::BpfProgram]) -> Result<(), SeccompError> {
    Ok(())
}
