//! placeholder
pub mod azurite;
