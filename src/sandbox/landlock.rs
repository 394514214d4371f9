//! Landlock (placeholder until the filter branch lands).

use crate::plan::LandlockPlan;

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("landlock")]
    Todo,
}

#[derive(Debug, serde::Serialize)]
pub struct LandlockStatus {
    pub abi: i32,
    pub missing: Vec<String>,
}

pub fn install(_plan: &LandlockPlan) -> Result<LandlockStatus, LandlockError> {
    Ok(LandlockStatus {
        abi: 0,
        missing: vec![],
    })
}
