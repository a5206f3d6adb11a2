//! Configuration text: an agent's TOML, and every policy file (`limits.toml`,
//! `checkpoints.toml`, `tools.toml`, `retention.toml`, `models.toml`, `routing.toml`,
//! `budgets.toml`). Property: an answer (a spec or errors naming the file), never a panic or
//! a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A directory of this process for the policy files.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::var_os("NOFX_FUZZ_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("config-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("policy directory");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = nofx::config::parse_agent(text, "agent.toml");
    let dir = dir();
    for file in ["limits.toml", "checkpoints.toml"] {
        std::fs::write(dir.join(file), text).expect("write the policy file");
    }
    let _ = nofx::config::load_limits(dir);
    let _ = nofx::config::load_checkpoint_policy(dir);
    let _ = nofx::tools::CommandPolicy::from_toml(text, "tools.toml");
    let _ = nofx::retention::RetentionPolicy::from_toml(text, "retention.toml");
    // Each model file in turn, the other two shipped.
    for file in ["models.toml", "routing.toml", "budgets.toml"] {
        for other in ["models.toml", "routing.toml", "budgets.toml"] {
            let _ = std::fs::remove_file(dir.join(other));
        }
        std::fs::write(dir.join(file), text).expect("write the policy file");
        let _ = nofx::models::ModelsConfig::load(Some(dir));
    }
});
