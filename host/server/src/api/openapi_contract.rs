//! What the OpenAPI document must say beyond what the handlers' annotations
//! generate, so that it is the server's contract: a client generated from
//! it sends only what the server accepts, and expects every answer the
//! server can give.
//!
//! The facts here hold for many routes at once, or are schemas utoipa's
//! annotations cannot write:
//!
//! - every route answers `400` for a malformed or unknown query parameter
//!   (query parameters are parsed strictly); every route behind a token
//!   answers `401` without a valid one and `403` when its role may not call
//!   it; every route that reads a body answers `413` past the size limit;
//!   every store failure is a `503` with `Retry-After`;
//! - query parameters carry the ranges and patterns the server checks;
//! - `POST /tasks` takes a document or a batch, and answers a task, a
//!   workflow, a batch or a dry run; event streams are server-sent events
//!   whose `data` is a JSON `EventRecord`; a token request names its
//!   tenant as a plugin name is named, and only a worker token may be shared.
//!
//! Every operation gets a unique `operationId` (`get_tasks_id`), from which
//! the links between operations are named.

use serde_json::{Map, Value, json};

/// A task type, tenant or plugin name, as [`flowmesh_types::NAME_RULE`]
/// says.
const NAME_PATTERN: &str = "^[a-z][a-z0-9-]{0,63}$";

/// Completes `doc` (the generated document, as JSON) into the contract.
pub(super) fn complete(doc: &mut Value) {
    add_schemas(doc);
    for ((path, method), operation) in operations(doc) {
        operation.insert("operationId".into(), json!(operation_id(&path, &method)));
        let secured = operation.contains_key("security");
        let reads_body = operation.contains_key("requestBody");
        let responses = operation
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("responses are an object");
        responses.entry("400").or_insert_with(|| {
            error("A malformed or unknown query parameter, or an invalid body; `details` names each field")
        });
        if secured {
            responses.entry("401").or_insert_with(|| {
                error("Missing, malformed, unknown, revoked or expired bearer token")
            });
            responses
                .entry("403")
                .or_insert_with(|| error("The token's role may not call this route"));
            responses.entry("503").or_insert_with(|| {
                error("The task store failed or its disk is full (`disk_full`); nothing was changed. Retry after `Retry-After` seconds")
            });
        }
        if reads_body {
            responses
                .entry("413")
                .or_insert_with(|| error("The body is over the server's request size limit"));
        }
        for response in responses.values_mut() {
            if let Some(response) = response.as_object_mut() {
                response.entry("description").or_insert_with(|| json!(""));
            }
        }
    }
    refine_routes(doc);
}

/// An operation of the document: its path and method, and the operation.
type Operation<'d> = ((String, String), &'d mut Map<String, Value>);

/// Every operation of `doc`, with its path and method.
fn operations(doc: &mut Value) -> Vec<Operation<'_>> {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if let Some(operation) = operation.as_object_mut() {
                found.push(((path.clone(), method.clone()), operation));
            }
        }
    }
    found
}

/// `get_tasks_id_events` for `GET /api/v1/tasks/{id}/events`.
fn operation_id(path: &str, method: &str) -> String {
    let route: Vec<&str> = path
        .trim_start_matches("/api/v1")
        .split('/')
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_matches(|c| c == '{' || c == '}'))
        .collect();
    format!("{method}_{}", route.join("_"))
}

/// An error answer with `description`.
fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The schemas annotations cannot write.
fn add_schemas(doc: &mut Value) {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the generated document has schemas");
    schemas.insert(
        "QueryFlag".into(),
        json!({
            "description": "true or false; present with no value (`?dryRun`) it means true",
            "anyOf": [{"type": "boolean"}, {"type": "string", "enum": [""]}]
        }),
    );
    schemas.insert(
        "TaskDocument".into(),
        json!({
            "type": "object",
            "description": "A Task or Workflow document. Its `spec` is checked against the task type's plugin (its JSON Schema and validate()); see the README's task document.",
            "required": ["apiVersion", "kind", "spec"],
            "additionalProperties": false,
            "properties": {
                "apiVersion": {"type": "string", "enum": ["flowmesh/v1"]},
                "kind": {"type": "string", "enum": ["Task", "Workflow"]},
                "metadata": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "name": {"type": ["string", "null"], "maxLength": 253},
                        "labels": {
                            "type": "object",
                            "additionalProperties": {"type": ["string", "number", "boolean"]}
                        }
                    }
                },
                "spec": {
                    "type": "object",
                    "description": "A task's spec: its host fields below, and the plugin's fields. A workflow's: stages and defaults.",
                    "properties": {
                        "taskType": {"type": "string", "pattern": NAME_PATTERN},
                        "maxAttempts": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": flowmesh_types::document::MAX_ATTEMPTS_LIMIT
                        },
                        "timeout": {"type": "string", "description": "30s, 5m, 2h: at most 7 days"},
                        "resources": {"type": "object"}
                    }
                }
            }
        }),
    );
    schemas.insert(
        "TaskSubmission".into(),
        json!({
            "description": "One document, or a batch: a JSON array of documents (each checked on its own; with ?partial=true the valid ones are stored).",
            "oneOf": [
                schema_ref("TaskDocument"),
                {"type": "array", "minItems": 1, "maxItems": 10000, "items": {}}
            ]
        }),
    );
    schemas.insert(
        "DryRunTask".into(),
        json!({
            "type": "object",
            "required": ["valid", "taskType", "message"],
            "properties": {
                "valid": {"type": "boolean"},
                "taskType": {"type": "string"},
                "message": {"type": "string"}
            }
        }),
    );
    schemas.insert(
        "DryRunWorkflow".into(),
        json!({
            "type": "object",
            "required": ["valid", "kind", "stages", "message"],
            "properties": {
                "valid": {"type": "boolean"},
                "kind": {"type": "string", "enum": ["Workflow"]},
                "stages": {"type": "integer", "minimum": 0},
                "message": {"type": "string"}
            }
        }),
    );
    schemas.insert(
        "ServerSentEvent".into(),
        json!({
            "type": "object",
            "description": "One server-sent event: `id` (its sequence number, for Last-Event-ID), `event` (its kind) and `data`, an EventRecord as JSON text",
            "required": ["id", "event", "data"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "event": {"type": "string", "enum": ["state", "log", "progress", "result", "workflow"]},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": schema_ref("EventRecord")
                }
            }
        }),
    );
    if let Some(request) = schemas.get("TokenRequest").cloned() {
        schemas.insert("TokenRequest".into(), token_request(request));
    }
}

/// The generated `TokenRequest`, split into a worker token (which may be
/// shared) and a user or admin token (which may not), with the server's
/// rules on each field.
fn token_request(generated: Value) -> Value {
    let mut base = generated;
    let description = base
        .as_object_mut()
        .and_then(|object| object.remove("description"));
    let properties = &mut base["properties"];
    properties["tenant"]["pattern"] = json!(NAME_PATTERN);
    properties["name"]["maxLength"] = json!(256);
    properties["expires"]["pattern"] = json!("^[1-9][0-9]{0,2}[smhd]$");
    let mut worker = base.clone();
    worker["properties"]["role"] = json!({"type": "string", "enum": ["worker"]});
    let mut client = base;
    client["properties"]["role"] = json!({"type": "string", "enum": ["admin", "user"]});
    client["properties"]["shared"] = json!({
        "type": "boolean",
        "enum": [false],
        "description": "Only a worker token can be shared"
    });
    json!({"description": description, "oneOf": [worker, client]})
}

/// The parameter `name` of `method path`.
fn parameter<'d>(doc: &'d mut Value, path: &str, method: &str, name: &str) -> &'d mut Value {
    doc["paths"][path][method]["parameters"]
        .as_array_mut()
        .and_then(|parameters| parameters.iter_mut().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} documents ?{name}"))
}

/// What each route accepts and answers, where the annotations fall short.
fn refine_routes(doc: &mut Value) {
    // Lists: the states are the enums; the page size and cursor as parsed.
    parameter(doc, "/api/v1/tasks", "get", "state")["schema"] = schema_ref("TaskState");
    parameter(doc, "/api/v1/workflows", "get", "state")["schema"] = schema_ref("WorkflowState");
    for path in ["/api/v1/tasks", "/api/v1/workflows"] {
        parameter(doc, path, "get", "limit")["schema"] =
            json!({"type": "integer", "minimum": 1, "maximum": super::query::MAX_PAGE});
        parameter(doc, path, "get", "cursor")["schema"] =
            json!({"type": "string", "pattern": "^-?[0-9]{1,18}$"});
    }
    parameter(doc, "/api/v1/tasks", "get", "label")["schema"] =
        json!({"type": "string", "pattern": "^[A-Za-z0-9._/-]{1,253}="});

    // Flags: `?dryRun` alone means true.
    for (path, name) in [
        ("/api/v1/tasks", "failFast"),
        ("/api/v1/tasks", "dryRun"),
        ("/api/v1/tasks", "partial"),
    ] {
        parameter(doc, path, "post", name)["schema"] = schema_ref("QueryFlag");
    }
    for path in ["/api/v1/tasks/{id}/events", "/api/v1/workflows/{id}/events"] {
        parameter(doc, path, "get", "follow")["schema"] = schema_ref("QueryFlag");
        let get = &mut doc["paths"][path]["get"]["responses"];
        get["200"]["content"] =
            json!({"text/event-stream": {"schema": schema_ref("ServerSentEvent")}});
        get["429"] = error("Too many event streams open for this token");
    }

    // Submissions.
    parameter(doc, "/api/v1/tasks", "post", "wait")["schema"] =
        json!({"type": "string", "pattern": "^(0|[0-9]{1,6}(ms|s|m|h))$"});
    let example = json!({
        "apiVersion": "flowmesh/v1", "kind": "Task",
        "metadata": {"name": "hello"},
        "spec": {"taskType": "echo", "message": "hi"}
    });
    let submit = &mut doc["paths"]["/api/v1/tasks"]["post"];
    submit["requestBody"]["content"] = json!({
        "application/json": {"schema": schema_ref("TaskSubmission"), "example": example},
        "application/yaml": {"schema": schema_ref("TaskSubmission"), "example": example},
        "application/x-ndjson": {"schema": {"type": "string"}}
    });
    submit["responses"]["200"] = json!({
        "description": "?dryRun: what was checked; nothing was stored",
        "content": {"application/json": {"schema": {"oneOf": [
            schema_ref("DryRunTask"), schema_ref("DryRunWorkflow"), schema_ref("BatchSubmitted")
        ]}}}
    });
    submit["responses"]["201"]["content"]["application/json"]["schema"] = json!({"oneOf": [
        schema_ref("Submitted"), schema_ref("SubmittedWorkflow"), schema_ref("BatchSubmitted")
    ]});
    submit["responses"]["201"]["links"] = json!({
        "GetTask": {"operationId": "get_tasks_id", "parameters": {"id": "$response.body#/id"}},
        "CancelTask": {"operationId": "delete_tasks_id", "parameters": {"id": "$response.body#/id"}},
        "TaskEvents": {"operationId": "get_tasks_id_events", "parameters": {"id": "$response.body#/id"}}
    });
    doc["paths"]["/api/v1/tokens"]["post"]["responses"]["201"]["links"] = json!({
        "RevokeToken": {"operationId": "delete_tokens_id", "parameters": {"id": "$response.body#/id"}}
    });

    // Components: any bytes go up; a component's bytes come down.
    parameter(doc, "/api/v1/plugins", "post", "name")["schema"] =
        json!({"type": "string", "pattern": NAME_PATTERN});
    parameter(doc, "/api/v1/plugins", "post", "sha256")["schema"] =
        json!({"type": "string", "pattern": "^(sha256:)?[0-9a-fA-F]{64}$"});
    doc["paths"]["/api/v1/plugins"]["post"]["requestBody"]["content"] =
        json!({"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}});
    doc["paths"]["/api/v1/worker/plugins/{digest}"]["get"]["responses"]["200"]["content"] =
        json!({"application/wasm": {}});
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_name_the_method_and_route() {
        assert_eq!(
            operation_id("/api/v1/tasks/{id}/events", "get"),
            "get_tasks_id_events"
        );
        assert_eq!(operation_id("/api/v1/tasks", "post"), "post_tasks");
        assert_eq!(operation_id("/metrics", "get"), "get_metrics");
    }

    #[test]
    fn the_contract_is_complete_on_every_operation() {
        let doc = super::super::openapi::document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("an item") {
                let id = operation["operationId"].as_str().expect("an id");
                assert!(ids.insert(id.to_string()), "{id} twice");
                let responses = operation["responses"].as_object().expect("responses");
                assert!(responses.contains_key("400"), "{method} {path}");
                if operation.get("security").is_some() {
                    for status in ["401", "403", "503"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
                for (status, response) in responses {
                    assert!(
                        response["description"].is_string(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
