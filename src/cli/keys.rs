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
        /// What the key may do, comma-separated: `submit` (create and control runs), `shell`
        /// (plans with shell tasks or command gates: any command the policy allows, on this
        /// host), `admin` (GET /metrics across projects).
        #[arg(long, value_name = "SCOPES", default_value = "submit")]
        scope: String,
    },
    /// List keys (never their secrets).
    Ls {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (`key_…`), or by its secret.
    Revoke {
        /// The key's id (or the secret itself, which is never printed).
        id: String,
    },
}

pub async fn dispatch(g: &Global, c: KeysCommand) -> CliResult {
    // Creating a key may make the store; listing and revoking need one.
    let store = match c {
        KeysCommand::Create { .. } => open_store(g).await?,
        _ => super::open_existing_store(g).await?,
    };
    let result = run(&store, c).await;
    store.close().await;
    result
}

async fn run(store: &crate::store::Store, c: KeysCommand) -> CliResult {
    match c {
        KeysCommand::Create {
            project,
            name,
            scope,
        } => {
            let scopes = crate::store::Scope::parse_list(&scope)
                .map_err(|e| Failure::Input(format!("--scope: {e}")))?;
            let (rec, secret) = store
                .create_key(&project, name.as_deref(), &scopes)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::BadInput(m) => Failure::Input(m),
                    other => Failure::from(other),
                })?;
            eprintln!(
                "created key {} for project `{}` with scope {}; it is shown once: keep it now",
                rec.id,
                rec.project,
                scope_text(&rec.scopes)
            );
            println!("{secret}");
        }
        KeysCommand::Ls { json } => {
            let keys = store.keys().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "keys": keys }))
                        .map_err(|e| Failure::Error(e.to_string()))?
                );
                return Ok(());
            }
            println!(
                "{:<18} {:<20} {:<20} {:<20} {:<24} STATUS",
                "ID", "PROJECT", "NAME", "SCOPES", "CREATED"
            );
            for k in keys {
                println!(
                    "{:<18} {:<20} {:<20} {:<20} {:<24} {}",
                    k.id,
                    k.project,
                    k.name.clone().unwrap_or_else(|| "-".into()),
                    scope_text(&k.scopes),
                    crate::domain::time::rfc3339_secs(k.created_at),
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            // A secret given by mistake still revokes its key, and is never echoed.
            let target = match store.key_by_secret(&id).await? {
                Some(k) => k.id,
                None => id,
            };
            if !store.revoke_key(&target).await? {
                let shown = if target.starts_with("key_") && target.len() <= 40 {
                    format!("`{target}`")
                } else {
                    "with that id or secret".to_string()
                };
                return Err(Failure::Input(format!(
                    "no active key {shown} (ids look like key_…; see nofx keys ls)"
                )));
            }
            eprintln!("revoked key {target}");
        }
    }
    Ok(())
}

fn scope_text(scopes: &[crate::store::Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
