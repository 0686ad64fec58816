//! placeholder during bootstrap; the CLI (run, check-config, ...) comes later.

#[allow(dead_code, unused_imports)] // the loader is wired to the CLI when main lands
mod config;

fn main() {}
