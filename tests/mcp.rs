//! MCP servers as tools, against real servers: the example server built with `rmcp`
//! (`examples/mcp_server.rs`) as a child over stdio and over streamable HTTP, and a
//! third-party server from the npm registry when CI installed one. Servers that will not
//! start, die mid-call or lack a tool; servers stopped when their run ends.

mod common;

use common::llm::{conversation_len, openai_answer, openai_calls, responder, Reply};
use common::{events, plan, TestStore};
use nofx::mcp::{McpConfig, McpServer, McpTransport};
use nofx::models::{ApiKey, ModelsConfig, RetryPolicy};
use nofx::{AgentSpec, EventType, Role, RunStatus, Runtime};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn calls(list: &[(&str, &str, Value)]) -> Reply {
    openai_calls(list, 100, 0)
}

fn answer(text: &str) -> Reply {
    openai_answer(text, 100, 0)
}

fn server(name: &str, transport: McpTransport) -> McpServer {
    McpServer {
        name: name.into(),
        transport,
        env: BTreeMap::new(),
        cwd: None,
        timeout: Duration::from_secs(20),
        tools: None,
    }
}

fn example_server() -> McpTransport {
    McpTransport::Command(vec![common::example("mcp_server").display().to_string()])
}

fn config(servers: Vec<McpServer>) -> McpConfig {
    McpConfig {
        servers: servers.into_iter().map(|s| (s.name.clone(), s)).collect(),
    }
}

fn models(base: &str) -> ModelsConfig {
    let mut cfg = ModelsConfig::shipped()
        .api_key("openai", ApiKey::new("sk-test"))
        .base_url("openai", format!("{base}/v1"));
    cfg.retry = RetryPolicy {
        max_attempts: 1,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    };
    cfg
}

fn reader(tools: &[&str]) -> AgentSpec {
    AgentSpec::new("reader", Role::Specialist)
        .with_capabilities(["files"])
        .with_tools(tools.iter().copied())
}

async fn runtime(store: &TestStore, base: &str, agent: AgentSpec, mcp: McpConfig) -> Runtime {
    store
        .builder()
        .models(models(base))
        .agents(vec![agent])
        .mcp(mcp)
        .build()
        .await
        .expect("runtime starts")
}

const PLAN: &str = "name: read\ntasks:\n  - id: prep\n    tool: shell\n    inputs: { argv: [sh, -c, 'printf \"alpha beta\\ngamma\\n\" > notes.txt'] }\n  - id: read\n    tool: agent\n    capabilities: [files]\n    depends_on: [prep]\n    inputs: { prompt: \"Summarise notes.txt.\" }\n";

both_stores! {
    async fn an_agent_reads_files_through_a_stdio_mcp_server_that_stops_with_the_run(store) {
        let (base, seen) = responder("/v1/chat/completions", |body| match conversation_len(body) {
            1 => calls(&[
                ("r1", "mcp_files_read_file", json!({"path": "notes.txt"})),
                ("p1", "mcp_files_sleep", json!({"seconds": 0})),
            ]),
            4 => calls(&[("w1", "mcp_files_word_count", json!({"text": "alpha beta\ngamma\n"}))]),
            _ => answer("notes.txt has three words on two lines"),
        })
        .await;
        let rt = runtime(&store, &base, reader(&["mcp:files.*"]), config(vec![server("files", example_server())])).await;
        let run = rt.submit(&plan(PLAN), Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");

        let seen = seen.lock().unwrap().clone();
        // The server's tools were offered under provider-safe names with their descriptions.
        let tools = seen[0].body["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"mcp_files_read_file") && names.contains(&"mcp_files_word_count"), "{names:?}");
        let read = tools.iter().find(|t| t["function"]["name"] == "mcp_files_read_file").unwrap();
        assert_eq!(read["function"]["description"], "Reads a text file (at most 256 KiB).");
        assert_eq!(read["function"]["parameters"]["required"], json!(["path"]));
        // The file's text came back as the call's result.
        let msgs = seen[1].body["messages"].as_array().unwrap();
        let got = msgs.iter().find(|m| m["tool_call_id"] == "r1").unwrap();
        assert_eq!(got["content"], "alpha beta\ngamma\n");
        let counted = common::llm::last_message(&seen[2].body);
        assert!(counted["content"].as_str().unwrap().contains("\"words\":3"), "{counted}");

        // The loop recorded the tools it saw, with the server's idempotency hints.
        let t = rt.store().transcript(run.id(), "read").await.unwrap();
        let seen_tools = t.loops[0].record.tools.as_array().unwrap().clone();
        let hint = |tool: &str| seen_tools.iter().find(|o| o["tool"] == tool).unwrap()["idempotent"].clone();
        assert_eq!(hint("mcp:files.word_count"), json!(true));
        assert_eq!(hint("mcp:files.read_file"), json!(true));
        assert_eq!(hint("mcp:files.append_line"), json!(false));
        assert_eq!(t.loops[0].turns[0].tool_calls[0].tool.as_deref(), Some("mcp:files.read_file"));

        // The server ran in the run's workspace, and is gone now the run has ended.
        let ws = std::path::PathBuf::from(rt.store().run(run.id()).await.unwrap().workspace);
        let pid: i32 = std::fs::read_to_string(ws.join("mcp-sleep.pid")).unwrap().trim().parse().unwrap();
        common::wait_for(Duration::from_secs(10), || !common::alive(pid));
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn an_agent_calls_a_server_over_streamable_http() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("remote.txt"), "served over http\n").unwrap();
    let mut child = tokio::process::Command::new(common::example("mcp_server"))
        .args(["--http", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        lines.next_line().await.unwrap().unwrap()
    };
    let (base, seen) = responder("/v1/chat/completions", |body| {
        match conversation_len(body) {
            1 => calls(&[("h1", "mcp_web_read_file", json!({"path": "remote.txt"}))]),
            _ => answer("it says: served over http"),
        }
    })
    .await;
    let mut web = server("web", McpTransport::Url(format!("http://{addr}/mcp")));
    web.tools = Some(vec!["read_file".into()]);
    let store = TestStore::sqlite().await;
    let rt = runtime(
        &store,
        &base,
        reader(&["mcp:web.read_file"]),
        config(vec![web]),
    )
    .await;
    let src = plan("name: r\ntasks:\n  - { id: read, tool: agent, capabilities: [files], inputs: { prompt: \"Read remote.txt.\" } }\n");
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let seen = seen.lock().unwrap().clone();
    // Only the allowed tool was offered.
    assert_eq!(seen[0].body["tools"].as_array().unwrap().len(), 1);
    let last = common::llm::last_message(&seen[1].body);
    assert_eq!(last["content"], "served over http\n");
    rt.shutdown().await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn servers_that_will_not_start_or_lack_a_tool_fail_the_task_saying_which() {
    let (base, _seen) = responder("/v1/chat/completions", |_| answer("unused")).await;
    let broken = server(
        "broken",
        McpTransport::Command(vec![
            "sh".into(),
            "-c".into(),
            "echo 'cannot open index.db' >&2; exit 3".into(),
        ]),
    );
    let store = TestStore::sqlite().await;
    let src = plan("name: r\ntasks:\n  - { id: read, tool: agent, capabilities: [files], inputs: { prompt: \"x\" } }\n");

    let rt = runtime(
        &store,
        &base,
        reader(&["mcp:broken.*"]),
        config(vec![broken]),
    )
    .await;
    let out = rt
        .submit(&src, Default::default())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let err = out.tasks[0].error.clone().unwrap();
    assert!(
        err.contains("MCP server `broken`")
            && err.contains("exit 3")
            && err.contains("cannot open index.db"),
        "{err}"
    );
    rt.shutdown().await;

    let rt = runtime(
        &store,
        &base,
        reader(&["mcp:files.nope"]),
        config(vec![server("files", example_server())]),
    )
    .await;
    let out = rt
        .submit(&src, Default::default())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let err = out.tasks[0].error.clone().unwrap();
    assert!(
        err.contains("MCP server `files` offers no tool `nope`") && err.contains("read_file"),
        "{err}"
    );
    rt.shutdown().await;

    // An agent naming a server that is not configured does not start.
    let err = store
        .builder()
        .agents(vec![reader(&["mcp:ghost.*"])])
        .build()
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("MCP server `ghost`"), "{err}");
}

#[tokio::test]
async fn a_server_killed_mid_call_is_a_failed_call_not_a_hung_task() {
    let (base, seen) = responder("/v1/chat/completions", |body| {
        match conversation_len(body) {
            1 => calls(&[("s1", "mcp_files_sleep", json!({"seconds": 300}))]),
            3 => calls(&[("r1", "mcp_files_list_files", json!({}))]),
            _ => answer("the server died, then came back"),
        }
    })
    .await;
    let store = TestStore::sqlite().await;
    let rt = runtime(
        &store,
        &base,
        reader(&["mcp:files.*"]),
        config(vec![server("files", example_server())]),
    )
    .await;
    let src = plan("name: r\ntasks:\n  - { id: read, tool: agent, capabilities: [files], inputs: { prompt: \"Wait.\" } }\n");
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let ws = std::path::PathBuf::from(rt.store().run(run.id()).await.unwrap().workspace);
    // The server writes its pid into the file it creates: wait for the number, not the file.
    let pid_of = |p: std::path::PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
    };
    common::until(Duration::from_secs(30), || {
        let p = ws.join("mcp-sleep.pid");
        async move { pid_of(p).is_some() }
    })
    .await;
    let pid = pid_of(ws.join("mcp-sleep.pid")).expect("the server wrote its pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), run.wait())
        .await
        .expect("the task does not hang")
        .unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let seen = seen.lock().unwrap().clone();
    let died = common::llm::last_message(&seen[1].body);
    let text = died["content"].as_str().unwrap();
    assert!(
        text.starts_with("error:") && text.contains("MCP server `files`") && text.contains("sleep"),
        "{text}"
    );
    // The next call started the server again.
    let listed = common::llm::last_message(&seen[2].body);
    assert!(
        listed["content"]
            .as_str()
            .unwrap()
            .contains("mcp-sleep.pid"),
        "{listed}"
    );
    let evs = events(&rt, run.id()).await;
    let failed = evs
        .iter()
        .find(|e| e.kind == EventType::ToolReturned && e.data["callId"] == "s1")
        .unwrap();
    assert_eq!(failed.data["isError"], true);
    rt.shutdown().await;
}

/// A third-party server from the npm registry (`@modelcontextprotocol/server-filesystem`),
/// when `NOFX_TEST_MCP_FILESYSTEM` names its installed binary (CI installs it).
#[tokio::test]
async fn a_third_party_filesystem_server_serves_an_agent() {
    let Some(bin) = std::env::var_os("NOFX_TEST_MCP_FILESYSTEM") else {
        eprintln!(
            "NOFX_TEST_MCP_FILESYSTEM is not set: the third-party server is not installed here"
        );
        return;
    };
    let (base, seen) = responder("/v1/chat/completions", |body| {
        match conversation_len(body) {
            1 => calls(&[("f1", "mcp_fs_read_text_file", json!({"path": "notes.txt"}))]),
            _ => answer("read it"),
        }
    })
    .await;
    let mut fs = server(
        "fs",
        McpTransport::Command(vec![bin.to_string_lossy().into_owned(), ".".into()]),
    );
    fs.tools = Some(vec!["read_text_file".into(), "list_directory".into()]);
    let store = TestStore::sqlite().await;
    let rt = runtime(&store, &base, reader(&["mcp:fs.*"]), config(vec![fs])).await;
    let run = rt.submit(&plan(PLAN), Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].body["tools"].as_array().unwrap().len(), 2);
    let last = common::llm::last_message(&seen[1].body);
    assert!(
        last["content"].as_str().unwrap().contains("alpha beta"),
        "{last}"
    );
    rt.shutdown().await;
}

/// Assistant messages of a request (the turns already taken).
#[cfg(feature = "cli")]
fn taken(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count())
}

/// `examples/agents` as a user runs it, with the example MCP server built for the tests and
/// a local OpenAI-compatible server scripted turn by turn.
#[cfg(feature = "cli")]
#[tokio::test]
async fn the_agents_example_reads_notes_and_publishes_a_report() {
    let (base, seen) = responder("/v1/chat/completions", |body| match taken(body) {
        0 => calls(&[("l", "mcp_files_list_files", json!({"dir": "notes"}))]),
        1 => calls(&[
            (
                "a",
                "mcp_files_read_file",
                json!({"path": "notes/durability.txt"}),
            ),
            (
                "b",
                "mcp_files_read_file",
                json!({"path": "notes/tools.txt"}),
            ),
        ]),
        2 => calls(&[
            (
                "w1",
                "mcp_files_append_line",
                json!({"path": "report.md", "text": "durability.txt: 7 words"}),
            ),
            (
                "w2",
                "shell",
                json!({"argv": ["sh", "-c", "echo 'tools.txt: 14 words' >> report.md"]}),
            ),
        ]),
        _ => answer("Wrote report.md: the notes describe durable, journaled agents."),
    })
    .await;
    let store = TestStore::sqlite().await;
    let dir = store.dir.path();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/mcp.toml"),
        format!(
            "[servers.files]\ncommand = [{:?}]\n",
            common::example("mcp_server").display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = common::nofx_cmd(dir);
    cmd.args(["--data-dir", "data", "--agents"])
        .arg(root.join("agents"))
        .args(["--policies", "policies", "run"])
        .arg(root.join("report.yaml"))
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", format!("{base}/v1"));
    // The scripted provider answers on this thread's runtime while the command runs.
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Progress shows what the agent calls.
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains("agent   analyse: analyst turn 1 calls mcp:files.list_files"),
        "{progress}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    // The agent's instructions file is its system prompt.
    assert!(seen[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .starts_with("You are a careful analyst"));
    let read = seen[2].body["messages"].as_array().unwrap();
    assert!(read
        .iter()
        .any(|m| m["tool_call_id"] == "b" && m["content"].as_str().unwrap().contains("run once")));
    let s = nofx::store::Store::open(&format!("sqlite://{}", dir.join("data/nofx.db").display()))
        .await
        .unwrap();
    let run = s.runs(&[], 1).await.unwrap().remove(0);
    let tasks = s.tasks(run.id).await.unwrap();
    let publish = tasks
        .iter()
        .find(|t| t.task_id.as_str() == "publish")
        .unwrap();
    // The two writes are calls of one turn, run concurrently: either may land first.
    let mut lines: Vec<&str> = publish.outputs.as_ref().unwrap()["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .collect();
    lines.sort_unstable();
    assert_eq!(lines, ["durability.txt: 7 words", "tools.txt: 14 words"]);
}

#[cfg(feature = "cli")]
#[test]
fn nofx_mcp_ls_lists_each_servers_tools_with_annotations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/mcp.toml"),
        format!(
            "[servers.files]\ncommand = [{:?}]\ntools = [\"read_file\", \"word_count\"]\n\n[servers.broken]\ncommand = [\"sh\", \"-c\", \"echo 'no config here' >&2; exit 4\"]\n",
            common::example("mcp_server").display().to_string()
        ),
    )
    .unwrap();
    let out = common::nofx_out(dir.path(), &["mcp", "ls", "files", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tools = doc["servers"][0]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["tool"].as_str().unwrap()).collect();
    assert_eq!(names, ["mcp:files.read_file", "mcp:files.word_count"]);
    assert_eq!(tools[0]["annotations"]["readOnlyHint"], true);
    assert_eq!(tools[1]["annotations"]["idempotentHint"], true);
    let out = common::nofx_out(dir.path(), &["mcp", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MCP server `broken`") && err.contains("no config here"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("mcp:files.read_file"));
    let out = common::nofx_out(dir.path(), &["mcp", "ls", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no MCP server `nope`"));
}

/// The value an MCP server's `env` read from nofx's environment is its secret: what the
/// server says back (here a file holding it) reaches the model, the transcript and the
/// store with the secret taken out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_server_says_never_holds_the_secret_its_env_read() {
    const TOKEN: &str = "ghp_nofxTestToken0123456789abcdef";
    std::env::set_var("NOFX_TEST_MCP_TOKEN", TOKEN);
    let store = TestStore::sqlite().await;
    let (base, seen) = responder("/v1/chat/completions", |body| {
        match conversation_len(body) {
            1 => calls(&[("r1", "mcp_files_read_file", json!({"path": "token.txt"}))]),
            _ => answer("read it"),
        }
    })
    .await;
    let mut files = server("files", example_server());
    files
        .env
        .insert("TOKEN".into(), "${env.NOFX_TEST_MCP_TOKEN}".into());
    let rt = runtime(&store, &base, reader(&["mcp:files.*"]), config(vec![files])).await;
    // The file appears once the run's workspace exists (the test writes it, so the plan
    // never holds the token).
    let src = "name: secret\ntasks:\n  - id: prep\n    tool: shell\n    inputs: { argv: [sh, -c, 'while [ ! -f token.txt ]; do sleep 0.02; done'] }\n  - id: read\n    tool: agent\n    capabilities: [files]\n    depends_on: [prep]\n    inputs: { prompt: \"Read token.txt.\" }\n";
    let run = rt.submit(&plan(src), Default::default()).await.unwrap();
    let ws = std::path::PathBuf::from(rt.store().run(run.id()).await.unwrap().workspace);
    std::fs::write(ws.join("token.txt"), format!("{TOKEN}\n")).unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");

    let seen = seen.lock().unwrap().clone();
    let msgs = seen[1].body["messages"].as_array().unwrap();
    let got = msgs.iter().find(|m| m["tool_call_id"] == "r1").unwrap();
    assert_eq!(got["content"], "[redacted]\n");
    let all = serde_json::to_string(&events(&rt, run.id()).await).unwrap();
    let transcript = format!(
        "{:?}",
        rt.store().transcript(run.id(), "read").await.unwrap()
    );
    assert!(!all.contains(TOKEN) && !transcript.contains(TOKEN));
    rt.shutdown().await;
    let db = std::fs::read(store.dir.path().join("nofx.db")).unwrap();
    let wal = std::fs::read(store.dir.path().join("nofx.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
    }
}
