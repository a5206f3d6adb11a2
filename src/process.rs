//! Starting children: every command, command gate and MCP server nofx starts runs under the
//! [`WATCHDOG`], in its own process group, with a minimal environment ([`isolate`]), so it
//! dies with whatever started it and sees nothing of nofx's environment it was not given.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The watchdog every command runs under, as `/bin/sh -c WATCHDOG nofx-watchdog PROGRAM
/// ARGS…`: it starts the command in the background in its own process group and waits for it.
/// The kernel sends the watchdog SIGTERM when the thread that started it dies (the
/// parent-death signal, set before the watchdog starts), which kills the whole group, so no
/// child or grandchild of a killed program keeps running; an embedding program needs nothing
/// for it. The command keeps the watchdog's standard input (a background job's would be
/// `/dev/null`), so MCP servers speaking over stdio run under it too. Its exit status is the
/// command's (128 + the signal for a killed command).
pub(crate) const WATCHDOG: &str = r#"trap 'kill -KILL 0' TERM; exec 3<&0; "$@" <&3 3<&- & wait $!"#;

/// The shell the watchdog runs in.
const WATCHDOG_SHELL: &str = "/bin/sh";

/// Kills a process group when dropped (unless the group was already reaped and killed).
pub(crate) struct GroupKill(pub(crate) Option<i32>);

impl GroupKill {
    /// Kills the group now (once).
    pub(crate) fn kill_now(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// The `PATH` commands are looked up on (the one child processes get).
fn search_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// The file `program` names: with a `/`, a path (relative ones in `cwd`, unknown without
/// it); else the first executable of that name on `PATH`.
pub(crate) fn locate(program: &str, cwd: Option<&Path>) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return if p.is_absolute() {
            Some(p.to_path_buf())
        } else {
            cwd.map(|c| c.join(p))
        };
    }
    std::env::split_paths(&search_path())
        .map(|dir| dir.join(program))
        .find(|c| is_executable(c))
}

/// Whether `p` is a file its owner, group or others may execute.
pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the watchdog's shell is there (looked at once).
static HAS_WATCHDOG_SHELL: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| Path::new(WATCHDOG_SHELL).is_file());

/// The command that runs `exe` with `args` under the [`WATCHDOG`] (or, on a system without
/// `/bin/sh`, directly, killed by the kernel when its starter dies; its own children then
/// outlive a killed starter).
///
/// # Errors
/// `cannot start PROGRAM: WHY` when `exe` is not an executable file.
pub(crate) fn watched(
    program: &str,
    exe: &Path,
    args: &[String],
) -> Result<tokio::process::Command, String> {
    use nix::sys::signal::Signal;
    if !is_executable(exe) {
        let why = if exe.exists() {
            "not an executable file"
        } else {
            "no such file"
        };
        return Err(format!("cannot start `{program}`: {why}"));
    }
    let (mut cmd, signal) = if *HAS_WATCHDOG_SHELL {
        let mut c = tokio::process::Command::new(WATCHDOG_SHELL);
        c.arg("-c")
            .arg(WATCHDOG)
            .arg("nofx-watchdog")
            .arg(exe)
            .args(args);
        (c, Signal::SIGTERM)
    } else {
        let mut c = tokio::process::Command::new(exe);
        c.args(args);
        (c, Signal::SIGKILL)
    };
    let starter = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and makes only two system
    // calls (prctl and getppid); it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal)?;
            if nix::unistd::getppid() != starter {
                // The starter died before the signal was armed: start nothing.
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Sets what every child nofx starts gets: `cwd`, an environment of `PATH`, `LANG` and `HOME`
/// plus `extra_env` (nothing else of nofx's), its own process group, piped stdout and
/// stderr, and a kill when its handle is dropped.
pub(crate) fn isolate(
    cmd: &mut tokio::process::Command,
    cwd: &Path,
    extra_env: &[(String, String)],
) {
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", search_path())
        .env(
            "LANG",
            std::env::var_os("LANG").unwrap_or_else(|| "C.UTF-8".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(home) = std::env::var_os("HOME") {
        cmd.env("HOME", home);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
}
