//! The API server as an [`ObjectSource`]: the objects an object names are read with GETs.

use std::fmt::Debug;
use std::future::Future;

use k8s_openapi::NamespaceResourceScope;
use kube::Api;
use serde::de::DeserializeOwned;

use crate::actions::objects::ObjectSource;

/// Reads objects through the controller's kube client.
pub struct KubeObjects(pub kube::Client);

impl ObjectSource for KubeObjects {
    type Error = kube::Error;

    fn get<K>(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<K>, kube::Error>> + Send
    where
        K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + Debug
            + Send
            + 'static,
    {
        let api = Api::<K>::namespaced(self.0.clone(), namespace);
        let name = name.to_string();
        async move { api.get_opt(&name).await }
    }
}
