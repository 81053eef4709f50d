//! Which namespace a set of controllers watches, and the shutdown signal they share.

use kube::{Api, Resource};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Scope {
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    pub shutdown: watch::Receiver<bool>,
}

impl Scope {
    pub fn api<K>(&self, client: &kube::Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
}

/// Resolves once `true` is sent (or the sender is gone).
pub async fn shutdown_future(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            break;
        }
    }
}
