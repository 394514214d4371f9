//! `build`: policies + host facts → plan. Pure.

use crate::host::Host;
use crate::policy::Policy;

use super::Plan;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {}

/// Resolves a merged policy against the host into a plan.
pub fn build(_policy: &Policy, _host: &Host, _argv: &[String]) -> Result<Plan, BuildError> {
    todo!("plan::build")
}
