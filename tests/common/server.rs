//! A `nofx serve` API in the test's process on an ephemeral port, with a client.

use super::TestStore;
use nofx::{RunId, Runtime};
use reqwest::StatusCode;
use serde_json::Value;

pub struct Server {
    pub base: String,
    pub rt: Runtime,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub async fn start(store: &TestStore) -> Self {
        let rt = store.runtime().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(nofx::api::serve(
            rt.clone(),
            Default::default(),
            listener,
            async {
                let _ = rx.await;
            },
        ));
        Self {
            base,
            rt,
            http: reqwest::Client::new(),
            stop: Some(tx),
        }
    }

    pub async fn key(&self, project: &str) -> String {
        self.rt
            .store()
            .create_key(project, None, &nofx::store::Scope::ALL)
            .await
            .unwrap()
            .1
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(
        &self,
        key: &str,
        path: &str,
        ctype: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", ctype)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn wait(&self, id: &str) {
        let id: RunId = id.parse().unwrap();
        self.rt.run(id).await.unwrap().wait().await.unwrap();
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.rt.shutdown().await;
    }
}
