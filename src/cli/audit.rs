//! `capgate audit`: verify the decision log's hash chain and checkpoints, export or query its
//! records, and manage the checkpoint signing key.

use std::path::PathBuf;

use anyhow::{bail, Context};

use super::files::{chains_of, log_source, signing_key_file, LogLocation, LogSource};

/// `verify`: every chain and its signed checkpoints, against the given public keys (any may
/// sign a checkpoint: replicas may have keys of their own) or the configured key.
pub fn verify(
    config: Option<&PathBuf>,
    location: LogLocation,
    public_key: Vec<String>,
) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    for given in &public_key {
        keys.push(capgate::audit::parse_public_key(given)?);
    }
    if keys.is_empty() {
        let file = signing_key_file(config, location.data_dir.as_deref())?;
        keys.push(
            capgate::audit::load_signing_key(&file, false)
                .with_context(|| "pass the checkpoint key's public half with --public-key")?
                .verifying_key(),
        );
    }
    match log_source(config, location)? {
        LogSource::File(path) => {
            if !path.exists() {
                bail!("{}: no decision log here", path.display());
            }
            let (count, problems) = capgate::audit::verify_any(&path, &keys)?;
            for problem in &problems {
                eprintln!("record {}: {}", problem.seq, problem.problem);
            }
            if !problems.is_empty() {
                bail!(
                    "{}: the decision log is not intact ({} problem(s) in {count} records)",
                    path.display(),
                    problems.len()
                );
            }
            println!("{}: {count} records, hash chain intact", path.display());
        }
        LogSource::Database(url) => {
            let chains = capgate::audit::read_chains(&url)?;
            let mut broken = 0;
            let mut records = 0;
            for chain in &chains {
                let problems = capgate::audit::verify_chain(&chain.rows, &chain.checkpoints, &keys);
                for problem in &problems {
                    eprintln!(
                        "chain {} record {}: {}",
                        chain.id, problem.seq, problem.problem
                    );
                }
                records += chain.rows.len();
                if problems.is_empty() {
                    println!(
                        "chain {}: {} records, hash chain intact",
                        chain.id,
                        chain.rows.len()
                    );
                } else {
                    broken += 1;
                }
            }
            if broken > 0 {
                bail!(
                    "{broken} of {} chain(s) in the database are not intact",
                    chains.len()
                );
            }
            println!(
                "{} chain(s), {records} records, every hash chain intact",
                chains.len()
            );
        }
    }
    Ok(())
}

/// `query`: the records matching every filter, as JSON Lines (with their chain, from a
/// database).
pub fn query(
    config: Option<&PathBuf>,
    location: LogLocation,
    filter: capgate::audit::Query,
) -> anyhow::Result<()> {
    match log_source(config, location)? {
        LogSource::File(path) => {
            for record in capgate::audit::query(&path, &filter)? {
                println!("{}", serde_json::to_string(&record)?);
            }
        }
        source @ LogSource::Database(_) => {
            for chain in chains_of(&source)? {
                for record in capgate::audit::query_rows(chain.rows, &filter)? {
                    let mut line = serde_json::to_value(&record)?;
                    line["chain"] = chain.id.clone().into();
                    println!("{line}");
                }
            }
        }
    }
    Ok(())
}

/// `export`: every record, as JSON Lines (with its chain, from a database).
pub fn export(config: Option<&PathBuf>, location: LogLocation) -> anyhow::Result<()> {
    let source = log_source(config, location)?;
    let with_chain = matches!(source, LogSource::Database(_));
    for chain in chains_of(&source)? {
        for (seq, record, prev_hash, hash) in chain.rows {
            let record: serde_json::Value = serde_json::from_str(&record)?;
            let mut line = serde_json::json!({"seq": seq, "prev_hash": prev_hash, "hash": hash, "record": record});
            if with_chain {
                line["chain"] = chain.id.clone().into();
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// `public-key`: the public half of the signing key, to keep elsewhere.
pub fn public_key(config: Option<&PathBuf>, key_file: Option<PathBuf>) -> anyhow::Result<()> {
    let file = match key_file {
        Some(file) => file,
        None => signing_key_file(config, None)?,
    };
    let key = capgate::audit::load_signing_key(&file, false)?;
    println!("{}", hex::encode(key.verifying_key().to_bytes()));
    Ok(())
}

/// `keygen`: a new signing key at `out` (never overwritten).
pub fn keygen(out: PathBuf) -> anyhow::Result<()> {
    let key = capgate::audit::generate_signing_key(&out)?;
    eprintln!("wrote {} (owner-only); its public key:", out.display());
    println!("{}", hex::encode(key.verifying_key().to_bytes()));
    Ok(())
}
