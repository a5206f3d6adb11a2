//! A program embedding nofx from its own working directory: the store follows the data
//! directory it names, and a memory store writes nothing there. (One test in this binary: it
//! changes the process's working directory.)

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_given_only_a_data_dir_keeps_its_store_there_whatever_the_working_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::env::set_current_dir(cwd.path()).unwrap();
    let rt = nofx::Runtime::builder()
        .data_dir(data.path().join("state"))
        .build()
        .await
        .expect("the runtime starts with only a data directory");
    let run = rt
        .submit(
            &common::plan("name: e\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n"),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap().status, nofx::RunStatus::Succeeded);
    let id = run.id();
    rt.shutdown().await;
    assert!(
        data.path().join("state/nofx.db").is_file(),
        "the store is in the data directory"
    );
    assert!(
        !cwd.path().join(".nofx").exists(),
        "nothing in the working directory"
    );
    let url = format!("sqlite://{}", data.path().join("state/nofx.db").display());
    let store = nofx::store::Store::open(&url).await.unwrap();
    assert_eq!(store.run(id).await.unwrap().id, id);
    store.close().await;

    // A memory store with no data directory writes nothing where the program runs, and
    // its scratch directory goes with the runtime.
    let rt = nofx::Runtime::builder()
        .memory_store()
        .build()
        .await
        .unwrap();
    let scratch = rt.data_dir().to_path_buf();
    let run = rt
        .submit(
            &common::plan("name: m\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [touch, made-here] } }\n"),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap().status, nofx::RunStatus::Succeeded);
    assert!(scratch.is_dir());
    rt.shutdown().await;
    drop(run);
    drop(rt);
    assert!(!scratch.exists(), "{} is left behind", scratch.display());
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "a memory store wrote into the working directory"
    );
}
