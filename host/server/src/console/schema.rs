//! A task type's JSON Schema as a table people can read: each field with
//! its type, whether it is required, its constraints and description,
//! nested objects indented under their parent.

use maud::{Markup, html};
use serde_json::Value;

/// One field of a schema, flattened.
struct Field {
    path: String,
    depth: usize,
    kind: String,
    required: bool,
    rules: Vec<String>,
    description: String,
}

fn kind_of(schema: &Value) -> String {
    match schema.get("type") {
        Some(Value::String(kind)) => match (kind.as_str(), schema.get("items")) {
            ("array", Some(items)) => format!("array of {}", kind_of(items)),
            _ => kind.clone(),
        },
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ if schema.get("enum").is_some() => "one of".to_string(),
        _ if schema.get("properties").is_some() => "object".to_string(),
        _ => "any".to_string(),
    }
}

fn rules_of(schema: &Value) -> Vec<String> {
    let mut rules = Vec::new();
    let show = |value: &Value| match value {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    };
    for (key, label) in [
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("minItems", "items ≥"),
        ("maxItems", "items ≤"),
        ("pattern", "matches"),
        ("format", "format"),
        ("default", "default"),
    ] {
        if let Some(value) = schema.get(key) {
            rules.push(format!("{label} {}", show(value)));
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        rules.push(options.iter().map(show).collect::<Vec<_>>().join(" | "));
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        rules.push("no other fields".to_string());
    }
    rules
}

fn flatten(schema: &Value, prefix: &str, depth: usize, fields: &mut Vec<Field>) {
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, property) in properties {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        fields.push(Field {
            path: path.clone(),
            depth,
            kind: kind_of(property),
            required: required.contains(&name.as_str()),
            rules: rules_of(property),
            description: property
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });
        flatten(property, &path, depth + 1, fields);
        if let Some(items) = property.get("items") {
            flatten(items, &format!("{path}[]"), depth + 1, fields);
        }
    }
}

/// `schema` as a table of its fields, with the raw schema folded below.
pub fn render(schema: &Value) -> Markup {
    let mut fields = Vec::new();
    flatten(schema, "", 0, &mut fields);
    let text = serde_json::to_string_pretty(schema).unwrap_or_default();
    html! {
        @if fields.is_empty() {
            p.muted { "The schema declares no fields." }
        } @else {
            table.schema {
                thead { tr { th { "field" } th { "type" } th { "rules" } th { "description" } } }
                tbody {
                    @for field in &fields {
                        tr {
                            td { span class={ "depth-" (field.depth.min(4)) } { code { (field.path) } }
                                 @if field.required { " " span.required title="required" { "required" } } }
                            td { (field.kind) }
                            td { (field.rules.join("; ")) }
                            td { (field.description) }
                        }
                    }
                }
            }
        }
        details { summary { "JSON Schema" } pre.json { code { (text) } } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_are_listed_with_their_rules() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["message"],
            "additionalProperties": false,
            "properties": {
                "message": {"type": "string", "maxLength": 100, "description": "what to say"},
                "options": {"type": "object", "properties": {"loud": {"type": "boolean", "default": false}}},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}
            }
        });
        let mut fields = Vec::new();
        flatten(&schema, "", 0, &mut fields);
        let paths: Vec<&str> = fields.iter().map(|field| field.path.as_str()).collect();
        assert_eq!(paths, ["message", "options", "options.loud", "tags"]);
        assert!(fields[0].required);
        assert_eq!(fields[0].rules, ["length ≤ 100"]);
        assert_eq!(fields[2].rules, ["default false"]);
        assert_eq!(fields[3].kind, "array of string");
    }
}
