//! `nofx keys create|ls|revoke`: API keys of `nofx serve`.

use super::{open_store, CliResult, Failure, Global};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key for a project; the key is printed once, alone on the last line of stdout.
    Create {
        /// The project the key grants access to.
        #[arg(long)]
        project: String,
        /// A label.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never their secrets).
    Ls {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (`key_…`).
    Revoke {
        /// The key's id.
        id: String,
    },
}

pub async fn dispatch(g: &Global, c: KeysCommand) -> CliResult {
    let store = open_store(g).await?;
    let result = run(&store, c).await;
    store.close().await;
    result
}

async fn run(store: &nofx::store::Store, c: KeysCommand) -> CliResult {
    match c {
        KeysCommand::Create { project, name } => {
            let (rec, secret) = store
                .create_key(&project, name.as_deref())
                .await
                .map_err(|e| match e {
                    nofx::store::StoreError::BadInput(m) => Failure::Input(m),
                    other => Failure::from(other),
                })?;
            eprintln!(
                "created key {} for project `{}`; it is shown once: keep it now",
                rec.id, rec.project
            );
            println!("{secret}");
        }
        KeysCommand::Ls { json } => {
            let keys = store.keys().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&keys)
                        .map_err(|e| Failure::Error(e.to_string()))?
                );
                return Ok(());
            }
            println!(
                "{:<18} {:<20} {:<20} {:<24} STATUS",
                "ID", "PROJECT", "NAME", "CREATED"
            );
            for k in keys {
                println!(
                    "{:<18} {:<20} {:<20} {:<24} {}",
                    k.id,
                    k.project,
                    k.name.unwrap_or_else(|| "-".into()),
                    super::time_text(k.created_at),
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !store.revoke_key(&id).await? {
                return Err(Failure::Input(format!("no active key `{id}`")));
            }
            eprintln!("revoked key {id}");
        }
    }
    Ok(())
}
