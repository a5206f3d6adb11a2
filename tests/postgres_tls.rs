//! Postgres over TLS, as managed services require it: a private Postgres server started by
//! the test with `ssl = on` and a certificate signed by a CA the test makes. `sslmode` and
//! `sslrootcert` in the URL are honoured: the right CA connects (the connection is TLS), the
//! wrong CA is refused, `sslmode=require` encrypts without checking.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";

fn sh(cmd: &mut Command) {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl` makes a CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.crt"));
    let key = dir.join(format!("{name}-server.key"));
    let csr = dir.join(format!("{name}-server.csr"));
    let crt = dir.join(format!("{name}-server.crt"));
    let ext = dir.join(format!("{name}-ext.cnf"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    sh(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN=nofx test CA {name}"))
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    sh(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    sh(Command::new("openssl")
        .args(["x509", "-req", "-days", "2"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&crt));
    (ca, crt, key)
}

/// A private Postgres server with TLS on a free port; stopped when dropped.
struct TlsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
}

impl TlsServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (ca, crt, key) = certificates(d, "right");
        let (other_ca, _, _) = certificates(d, "wrong");
        let data = d.join("data");
        std::fs::create_dir(&data).unwrap();
        // The server refuses to run as root: its files belong to `postgres`.
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "the `postgres` user exists where the server is installed"
            );
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        for p in [d, &data, &crt, &key] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        sh(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{BIN}/initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{BIN}/postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "ssl=on",
            ])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", crt.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key.display()))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", d.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(format!("{BIN}/pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .output()
                .unwrap();
            if ready.status.success() {
                break;
            }
            assert!(Instant::now() < end, "the TLS test server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
            ca,
            other_ca,
        }
    }

    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        // runuser passes SIGTERM on: the server shuts down fast.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The server's view of every other client connection: (encrypted, not encrypted).
async fn client_connections(server: &TlsServer) -> (i64, i64) {
    use sqlx::Connection;
    let mut own = sqlx::PgConnection::connect(&server.url("sslmode=require"))
        .await
        .unwrap();
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()",
    )
    .fetch_one(&mut own)
    .await
    .unwrap();
    own.close().await.unwrap();
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_honours_sslmode_and_sslrootcert() {
    let server = tokio::task::spawn_blocking(TlsServer::start).await.unwrap();
    // The CA that signed the server's certificate: verified, encrypted, and a run works.
    let url = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        server.ca.display()
    ));
    let data = tempfile::tempdir().unwrap();
    let rt = nofx::Runtime::builder()
        .database_url(url.clone())
        .data_dir(data.path())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let (encrypted, plain) = client_connections(&server).await;
    assert!(
        encrypted >= 1 && plain == 0,
        "the runtime's connections are encrypted: {encrypted} encrypted, {plain} not"
    );
    let run = rt
        .submit(
            &common::plan("name: t\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n"),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap().status, nofx::RunStatus::Succeeded);
    rt.shutdown().await;
    // `require` encrypts without checking the certificate.
    let store = nofx::store::Store::open(&server.url("sslmode=require"))
        .await
        .unwrap();
    let (encrypted, plain) = client_connections(&server).await;
    assert!(
        encrypted >= 1 && plain == 0,
        "{encrypted} encrypted, {plain} not"
    );
    store.close().await;
    // Another CA: refused, saying why.
    let wrong = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        server.other_ca.display()
    ));
    let err = nofx::store::Store::open(&wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open the postgres store"), "{err}");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    // A CA file that is not there: refused.
    let missing = server.url("sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt");
    assert!(nofx::store::Store::open(&missing).await.is_err());
}
