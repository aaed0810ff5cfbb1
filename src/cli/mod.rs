//! What each `capgate` command does; `main.rs` holds the command line as clap reads it and hands
//! each command to its module here. One module per command group, plus `files` (where a command
//! finds its configuration, decision log, signing key and policies) and `logging`.

pub mod admin;
pub mod audit;
pub mod files;
pub mod logging;
pub mod policy;
pub mod serve;
pub mod store;
pub mod token;
