//! The metrics and health endpoints: `/metrics`, `/healthz` (the process serves), `/readyz`
//! (the process is connected and either stands by or leads with its caches synced).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::metrics::Metrics;
use super::objects::caches_synced;

#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Health>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn readyz(State(h): State<Health>) -> (StatusCode, &'static str) {
    if !h.ready.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    } else if !caches_synced(&h.metrics) {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    } else {
        (StatusCode::OK, "ready")
    }
}

/// Binds `addr` and serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind the metrics address {addr}: {e}"))?;
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::context::{Settings, Shared};
    use crate::controller::objects::Caches;
    use crate::controller::scope::Scope;

    /// The endpoints over real HTTP, as the kubelet and Prometheus reach them.
    #[tokio::test]
    async fn health_readiness_and_metrics_over_http() {
        let health = Health {
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
        };
        health
            .metrics
            .reconciled("ComputeTarget", std::time::Duration::from_millis(3));
        health.metrics.error("ComputeTarget", "QuotaExceeded");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(axum::serve(listener, router(health.clone())).into_future());
        let http = reqwest::Client::new();
        let get = |path: &'static str| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let r = http.get(format!("{base}{path}")).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        assert_eq!(get("/healthz").await, (200, "ok".to_string()));
        assert_eq!(get("/readyz").await.0, 503);
        health.ready.store(true, Ordering::Relaxed);
        assert_eq!(get("/readyz").await, (200, "ready".to_string()));
        let (status, body) = get("/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("ComputeTarget") && body.contains("QuotaExceeded"),
            "{body}"
        );
        assert!(
            body.trim_end().ends_with("# EOF"),
            "OpenMetrics text ends with # EOF"
        );
        server.abort();
    }

    /// The controllers of a scope against `url`, reporting to their own metrics.
    fn controllers(url: &str) -> (Arc<Shared>, Scope, tokio::sync::watch::Sender<bool>) {
        let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        let settings = Settings {
            namespaces: vec!["ml".into()],
            concurrency: 1,
            resync_period: std::time::Duration::from_secs(3600),
            enable_kubernetes_compute: false,
            local_jobs: false,
            arm: crate::azure::ArmConfig::default(),
            instance: None,
        };
        let shared = Arc::new(Shared::new(client, settings, Arc::new(Metrics::default())));
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let scope = Scope {
            namespace: Some("ml".into()),
            shutdown,
        };
        (shared, scope, stop)
    }

    /// A leader is ready only once the caches its controllers read have their first list.
    #[tokio::test]
    async fn readyz_waits_for_the_caches_of_the_controllers() {
        let readyz_of = |shared: &Shared| {
            readyz(State(Health {
                metrics: shared.metrics.clone(),
                ready: Arc::new(AtomicBool::new(true)),
            }))
        };
        // An API server that takes connections and never answers: nothing is ever listed.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (shared, scope, _stop) =
            controllers(&format!("http://{}", silent.local_addr().unwrap()));
        assert_eq!(readyz_of(&shared).await.0, 200, "no controllers yet");
        let caches = Caches::of(&shared, &scope);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            readyz_of(&shared).await,
            (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
        );

        let kube = fake_kube::FakeKube::start().await.unwrap();
        let (listed, scope, _stop) = controllers(&kube.url());
        let listed_caches = Caches::of(&listed, &scope);
        assert!(listed_caches.wait_synced(&scope).await);
        assert_eq!(readyz_of(&listed).await, (StatusCode::OK, "ready"));
        assert_eq!(
            readyz_of(&shared).await.0,
            503,
            "each controller set has its own caches"
        );
        drop(caches);
        assert_eq!(readyz_of(&shared).await.0, 200, "its controllers stopped");
    }
}
