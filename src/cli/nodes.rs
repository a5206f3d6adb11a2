//! `nofx nodes ls`: the nodes of a fleet sharing this store, their load and leases.

use super::{open_existing_store, CliResult, Failure, Global};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum NodesCommand {
    /// Nodes (live ones heard from within the lease TTL), their load and the leases they hold.
    Ls {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub async fn dispatch(g: &Global, c: NodesCommand) -> CliResult {
    let NodesCommand::Ls { json } = c;
    let store = open_existing_store(g).await?;
    let read = async {
        Ok::<_, crate::store::StoreError>((store.nodes().await?, store.live_leases().await?))
    }
    .await;
    store.close().await;
    let (nodes, leases) = read?;
    let now = crate::domain::time::now_ms();
    let ttl = (g.lease_ttl * 1000.0) as i64;
    if json {
        let doc: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                let held: Vec<&crate::store::LeaseRow> =
                    leases.iter().filter(|l| l.holder == n.id).collect();
                serde_json::json!({
                    "id": n.id, "host": n.host, "pid": n.pid,
                    "startedAt": crate::domain::time::rfc3339_secs(n.started_at), "heartbeatAt": crate::domain::time::rfc3339_secs(n.heartbeat_at),
                    "live": n.heartbeat_at > now - ttl, "load": n.load, "leases": held,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"nodes": doc}))
                .map_err(|e| Failure::Error(e.to_string()))?
        );
        return Ok(());
    }
    if nodes.is_empty() {
        eprintln!("no node has served from this store (nodes are `nofx serve` processes)");
    }
    println!(
        "{:<40} {:<16} {:>8} {:<5} {:>5} {:>7}  HEARTBEAT",
        "NODE", "HOST", "PID", "LIVE", "LOAD", "LEASES"
    );
    for n in &nodes {
        let held = leases.iter().filter(|l| l.holder == n.id).count();
        println!(
            "{:<40} {:<16} {:>8} {:<5} {:>5} {:>7}  {}",
            n.id,
            n.host,
            n.pid,
            if n.heartbeat_at > now - ttl {
                "yes"
            } else {
                "no"
            },
            n.load,
            held,
            crate::domain::time::rfc3339_secs(n.heartbeat_at)
        );
    }
    let others = leases
        .iter()
        .filter(|l| !nodes.iter().any(|n| n.id == l.holder))
        .count();
    if others > 0 {
        println!("{others} lease(s) held by processes that are not serving nodes (nofx run, nofx resume)");
    }
    Ok(())
}
