//! `capgate audit`: verify the decision log's hash chain and checkpoints, export or query its
//! records, and manage the checkpoint signing key.

use std::path::PathBuf;

use anyhow::{bail, Context};

use super::files::{log_file, signing_key_file, LogLocation};

/// `verify`: the hash chain and the signed checkpoints, against `public_key` or the configured key.
pub fn verify(
    config: Option<&PathBuf>,
    location: LogLocation,
    public_key: Option<String>,
) -> anyhow::Result<()> {
    let key = match public_key {
        Some(given) => capgate::audit::parse_public_key(&given)?,
        None => {
            let file = signing_key_file(config, location.data_dir.as_deref())?;
            capgate::audit::load_signing_key(&file, false)
                .with_context(|| "pass the checkpoint key's public half with --public-key")?
                .verifying_key()
        }
    };
    let path = log_file(config, location)?;
    if !path.exists() {
        bail!("{}: no decision log here", path.display());
    }
    let (count, problems) = capgate::audit::verify(&path, &key)?;
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
    Ok(())
}

/// `query`: the records matching every filter, as JSON Lines.
pub fn query(
    config: Option<&PathBuf>,
    location: LogLocation,
    filter: capgate::audit::Query,
) -> anyhow::Result<()> {
    let path = log_file(config, location)?;
    for record in capgate::audit::query(&path, &filter)? {
        println!("{}", serde_json::to_string(&record)?);
    }
    Ok(())
}

/// `export`: every record, as JSON Lines.
pub fn export(config: Option<&PathBuf>, location: LogLocation) -> anyhow::Result<()> {
    let path = log_file(config, location)?;
    for (seq, record, prev_hash, hash) in capgate::audit::read_all(&path)? {
        let record: serde_json::Value = serde_json::from_str(&record)?;
        println!(
            "{}",
            serde_json::json!({"seq": seq, "prev_hash": prev_hash, "hash": hash, "record": record})
        );
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
