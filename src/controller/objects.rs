//! The API server as an [`ObjectSource`]: the objects an object names are read with GETs.

use std::future::Future;

use kube::Api;

use crate::actions::objects::{Namespaced, ObjectSource};

/// Reads objects through the controller's kube client.
pub struct KubeObjects(pub kube::Client);

impl ObjectSource for KubeObjects {
    type Error = kube::Error;

    fn get<K: Namespaced>(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<K>, kube::Error>> + Send {
        let api = Api::<K>::namespaced(self.0.clone(), namespace);
        let name = name.to_string();
        async move { api.get_opt(&name).await }
    }
}
