//! Workspace connections (create or replace, get). As in Azure ML, the credentials of a
//! connection are write-only: GET and PUT answers never carry them (only `listsecrets`
//! would, and the fake does not implement it). Tests read what was sent from the request log.

use super::{Ctx, lock_poisoned, system_data};
use crate::errors;
use crate::reply::Reply;
use crate::store::Asset;
use serde_json::{Value, json};

fn ids(ctx: &Ctx<'_>) -> (String, String) {
    let id = format!(
        "{}/connections/{}",
        ctx.workspace_id,
        ctx.route.param("connectionName")
    );
    (id.to_ascii_lowercase(), id)
}

fn render(connection: &Asset) -> Value {
    let mut props = connection
        .body
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(props) = props.as_object_mut() {
        props.remove("credentials");
    }
    json!({
        "id": connection.id,
        "name": connection.name,
        "type": "Microsoft.MachineLearningServices/workspaces/connections",
        "systemData": system_data(connection.created_wall, connection.created_wall),
        "properties": props,
    })
}

pub fn get(ctx: &Ctx<'_>) -> Reply {
    let (k, _) = ids(ctx);
    let Ok(store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    match store.connections.get(&k) {
        Some(c) => Reply::json(200, render(c)),
        // errors/…git_crud.json #2: the account-rp envelope, `UserError` -> `NotFoundError`.
        None => errors::component(
            404,
            "account-rp",
            &format!(
                "Connection {} can't be found in this workspace",
                ctx.route.param("connectionName")
            ),
            &["NotFoundError"],
        ),
    }
}

pub fn put(ctx: &Ctx<'_>) -> Reply {
    let (k, id) = ids(ctx);
    let body = match ctx.resource_body() {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let connection = Asset {
        id,
        name: ctx.route.param("connectionName").to_string(),
        body,
        created_wall: ctx.wall,
    };
    let reply = Reply::json(200, render(&connection));
    store.connections.insert(k, connection);
    reply
}
