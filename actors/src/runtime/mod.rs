//! The actor runtime: supervision, dead letters, traced envelopes. Nothing domain-specific lives here.

pub mod dead_letters;
