//! Request validation in the reference server's vocabulary.
//!
//! The reference (FastAPI + pydantic v2) answers an invalid request with *every* error at
//! once, each `{type, loc, msg, input, ctx?}`, and its clients' forms show one message per
//! field. serde stops at the first error and words it its own way, so before a handler's
//! extractors run we check path, query and body against the reference's own request
//! schemas (`contract/reference-openapi.json`, which pydantic generated from the models)
//! and answer the list pydantic would. What passes is then deserialized by serde as
//! before, and our stricter rules still answer in the same shape (`domain::support::
//! validation`). Like pydantic's lax mode, a number or boolean written as a string is
//! accepted (and converted) in a body too.
//!
//! Covered: `type`, `anyOf` (nullable and unions), `$ref`, `required`, `enum`/`const`,
//! `minLength`/`maxLength`, `minimum`/`maximum` (and exclusive), `minItems`, `items`,
//! `additionalProperties`, and the `uuid`, `date-time` and `uri` formats. Messages are
//! pydantic-core's; the text after "valid datetime or date," is a close approximation
//! of its date parser's.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::http::Method;
use serde_json::{json, Map, Value};

const SPEC: &str = include_str!("../../contract/reference-openapi.json");

/// Where a value came from: JSON keeps its types; path and query values are text, which
/// pydantic parses into the declared type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Json,
    Text,
}

/// One operation's request schemas.
pub struct Operation {
    template: Template,
    params: Vec<Param>,
    body: Option<Body>,
}

/// A path's segments, as templates are matched against them (split once per request, then
/// matched against every template).
pub fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/').split('/').collect()
}

/// An OpenAPI path such as `/api/v1/boards/{board_id}`, matched against concrete paths.
pub struct Template(Vec<Segment>);

enum Segment {
    Literal(String),
    Param(String),
}

impl Template {
    pub fn parse(path: &str) -> Template {
        Template(
            segments(path)
                .into_iter()
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Param(name.to_string()),
                        None => Segment::Literal(s.to_string()),
                    },
                )
                .collect(),
        )
    }

    /// Whether a concrete path, split by [`segments`], fits.
    pub fn fits(&self, parts: &[&str]) -> bool {
        parts.len() == self.0.len()
            && self
                .0
                .iter()
                .zip(parts)
                .all(|(segment, part)| match segment {
                    Segment::Literal(text) => text == part,
                    Segment::Param(_) => true,
                })
    }

    /// Which segments are literal: of the templates that fit a path, the one whose literals
    /// come earlier is meant (`/boards/snapshot` over `/boards/{board_id}`).
    fn literals(&self) -> impl Iterator<Item = bool> + '_ {
        self.0.iter().map(|s| matches!(s, Segment::Literal(_)))
    }

    /// The text of parameter `name` in the concrete `path`.
    fn value<'p>(&self, path: &'p str, name: &str) -> Option<&'p str> {
        let i = self
            .0
            .iter()
            .position(|s| matches!(s, Segment::Param(n) if n == name))?;
        path.trim_matches('/').split('/').nth(i)
    }
}

struct Param {
    name: String,
    in_path: bool,
    required: bool,
    schema: Value,
}

struct Body {
    required: bool,
    schema: Value,
}

struct Spec {
    operations: HashMap<Method, Vec<Operation>>,
    components: Map<String, Value>,
}

fn spec() -> &'static Spec {
    static SPEC_CELL: OnceLock<Spec> = OnceLock::new();
    SPEC_CELL.get_or_init(|| {
        let doc: Value = serde_json::from_str(SPEC).expect("the embedded OpenAPI document is JSON");
        let components = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut operations: HashMap<Method, Vec<Operation>> = HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                operations
                    .entry(method)
                    .or_default()
                    .push(Operation::read(path, op));
            }
        }
        Spec {
            operations,
            components,
        }
    })
}

impl Operation {
    fn read(path: &str, op: &Value) -> Operation {
        let params = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path" || p["in"] == "query")
            .map(|p| Param {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                in_path: p["in"] == "path",
                required: p["required"].as_bool().unwrap_or(false),
                schema: p["schema"].clone(),
            })
            .collect();
        let body = op["requestBody"]["content"]["application/json"]["schema"]
            .as_object()
            .map(|schema| Body {
                required: op["requestBody"]["required"].as_bool().unwrap_or(false),
                schema: Value::Object(schema.clone()),
            });
        Operation {
            template: Template::parse(path),
            params,
            body,
        }
    }

    /// Every error in the path and query parameters of a request to `path`.
    pub fn check_parameters(&self, path: &str, query: &str) -> Vec<Value> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let mut errors = Vec::new();
        for param in &self.params {
            let mut loc = vec![json!(if param.in_path { "path" } else { "query" })];
            loc.push(json!(param.name));
            let mut value = if param.in_path {
                self.template
                    .value(path, &param.name)
                    .map(|raw| json!(percent_decode(raw)))
            } else if param.schema["type"] == "array" {
                let values: Vec<Value> = pairs
                    .iter()
                    .filter(|(k, _)| *k == param.name)
                    .map(|(_, v)| json!(v))
                    .collect();
                (!values.is_empty()).then_some(Value::Array(values))
            } else {
                pairs
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == param.name)
                    .map(|(_, v)| json!(v))
            };
            match value.as_mut() {
                Some(value) => {
                    let mut checker = Checker::new(Source::Text);
                    checker.check(&param.schema, value, &mut loc);
                    errors.append(&mut checker.errors);
                }
                None if param.required => errors.push(json!({
                    "type": "missing", "loc": loc, "msg": "Field required", "input": null,
                })),
                None => {}
            }
        }
        errors
    }

    /// Every error in a JSON body (`None` when there was none); what passes may be
    /// converted in place (`"3"` for an integer becomes `3`).
    pub fn check_body(&self, body: Option<&mut Value>) -> Vec<Value> {
        let Some(schema) = self.body.as_ref() else {
            return Vec::new();
        };
        match body {
            None if schema.required => vec![json!({
                "type": "missing", "loc": ["body"], "msg": "Field required", "input": null,
            })],
            None => Vec::new(),
            Some(value) => {
                let mut checker = Checker::new(Source::Json);
                checker.top_level = true;
                checker.check(&schema.schema, value, &mut vec![json!("body")]);
                checker.errors
            }
        }
    }
}

/// The reference's operation for `method` and a concrete request `path`, if it has one.
pub fn operation(method: &Method, path: &str) -> Option<&'static Operation> {
    let parts = segments(path);
    spec()
        .operations
        .get(method)?
        .iter()
        .filter(|op| op.template.fits(&parts))
        .max_by(|a, b| a.template.literals().cmp(b.template.literals()))
}

/// The errors pydantic gives for `raw`, the text of a path or query parameter declared
/// `schema` (`{"type": "string", "format": "uuid"}`, say), located at `loc`.
pub fn check_text(schema: &Value, raw: &str, mut loc: Vec<Value>) -> Vec<Value> {
    let mut checker = Checker::new(Source::Text);
    checker.check(schema, &mut json!(raw), &mut loc);
    checker.errors
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Walks one value against one schema, collecting pydantic's errors.
struct Checker {
    source: Source,
    /// The body itself, which FastAPI reads "from attributes" (its own error wording).
    top_level: bool,
    errors: Vec<Value>,
}

impl Checker {
    fn new(source: Source) -> Self {
        Checker {
            source,
            top_level: false,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, kind: &str, loc: &[Value], msg: String, input: &Value, ctx: Option<Value>) {
        let mut item = json!({ "type": kind, "loc": loc, "msg": msg, "input": input });
        if let Some(ctx) = ctx {
            item["ctx"] = ctx;
        }
        self.errors.push(item);
    }

    fn resolve(schema: &Value) -> &Value {
        match schema["$ref"].as_str() {
            Some(reference) => reference
                .rsplit('/')
                .next()
                .and_then(|name| spec().components.get(name))
                .unwrap_or(schema),
            None => schema,
        }
    }

    fn check(&mut self, schema: &Value, value: &mut Value, loc: &mut Vec<Value>) {
        let top_level = std::mem::take(&mut self.top_level);
        let class = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next());
        let schema = Self::resolve(schema);
        if let Some(members) = schema["anyOf"].as_array() {
            return self.union(members, value, loc);
        }
        if let Some(allowed) = schema["enum"].as_array() {
            return self.literal(allowed, value, loc);
        }
        if let Some(constant) = schema.get("const") {
            return self.literal(std::slice::from_ref(constant), value, loc);
        }
        match schema["type"].as_str() {
            Some("string") => self.string(schema, value, loc),
            Some("integer") => self.integer(schema, value, loc),
            Some("number") => self.number(schema, value, loc),
            Some("boolean") => self.boolean(value, loc),
            Some("null") if !value.is_null() => self.error(
                "none_required",
                loc,
                "Input should be None".into(),
                value,
                None,
            ),
            Some("array") => self.array(schema, value, loc),
            Some("object") => self.object(schema, value, loc, class, top_level),
            _ => {}
        }
    }

    /// `Optional[X]` reports X's errors; a union of several types reports each member's
    /// errors under the member's name, as pydantic's smart union does.
    fn union(&mut self, members: &[Value], value: &mut Value, loc: &mut Vec<Value>) {
        let nullable = members.iter().any(|m| m["type"] == "null");
        if nullable && value.is_null() {
            return;
        }
        let types: Vec<&Value> = members.iter().filter(|m| m["type"] != "null").collect();
        if let [only] = types.as_slice() {
            return self.check(only, value, loc);
        }
        let mut found = Vec::new();
        for member in &types {
            let mut attempt = value.clone();
            let mut checker = Checker::new(self.source);
            let mut member_loc = loc.clone();
            member_loc.push(json!(member_tag(member)));
            checker.check(member, &mut attempt, &mut member_loc);
            if checker.errors.is_empty() {
                *value = attempt;
                return;
            }
            found.append(&mut checker.errors);
        }
        self.errors.append(&mut found);
    }

    fn literal(&mut self, allowed: &[Value], value: &Value, loc: &[Value]) {
        if allowed.contains(value) {
            return;
        }
        let quoted: Vec<String> = allowed.iter().map(python_repr).collect();
        let expected = match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => quoted.join(""),
        };
        self.error(
            "literal_error",
            loc,
            format!("Input should be {expected}"),
            value,
            Some(json!({ "expected": expected })),
        );
    }

    fn string(&mut self, schema: &Value, value: &Value, loc: &[Value]) {
        let Some(text) = value.as_str() else {
            let (kind, msg) = match schema["format"].as_str() {
                Some("uuid") => (
                    "uuid_type",
                    "UUID input should be a string, bytes or UUID object",
                ),
                Some("uri") => ("url_type", "URL input should be a string or URL"),
                Some("date-time") if value.is_number() => return,
                Some("date-time") => ("datetime_type", "Input should be a valid datetime"),
                _ => ("string_type", "Input should be a valid string"),
            };
            return self.error(kind, loc, msg.into(), value, None);
        };
        match schema["format"].as_str() {
            Some("uuid") => {
                if let Err(err) = uuid::Uuid::parse_str(text) {
                    let err = err.to_string();
                    let msg = format!("Input should be a valid UUID, {err}");
                    self.error(
                        "uuid_parsing",
                        loc,
                        msg,
                        value,
                        Some(json!({ "error": err })),
                    );
                }
                return;
            }
            Some("date-time") => {
                if crate::domain::support::validation::parse_datetime(text).is_none() {
                    let err = datetime_error(text);
                    let msg = format!("Input should be a valid datetime or date, {err}");
                    let ctx = Some(json!({ "error": err }));
                    self.error("datetime_from_date_parsing", loc, msg, value, ctx);
                }
                return;
            }
            Some("uri") => {
                if let Err(err) = url::Url::parse(text) {
                    let err = err.to_string();
                    let msg = format!("Input should be a valid URL, {err}");
                    self.error(
                        "url_parsing",
                        loc,
                        msg,
                        value,
                        Some(json!({ "error": err })),
                    );
                    return;
                }
            }
            _ => {}
        }
        let chars = text.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64().filter(|min| chars < *min) {
            let msg = format!("String should have at least {min} character{}", plural(min));
            let ctx = Some(json!({ "min_length": min }));
            self.error("string_too_short", loc, msg, value, ctx);
        } else if let Some(max) = schema["maxLength"].as_u64().filter(|max| chars > *max) {
            let msg = format!("String should have at most {max} character{}", plural(max));
            let ctx = Some(json!({ "max_length": max }));
            self.error("string_too_long", loc, msg, value, ctx);
        }
    }

    fn integer(&mut self, schema: &Value, value: &mut Value, loc: &[Value]) {
        let parsed = match &*value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.clone()),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok((f as i64).into()),
                _ => Err((
                    "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part",
                )),
            },
            Value::Bool(b) if self.source == Source::Json => Ok(i64::from(*b).into()),
            Value::String(text) => text.trim().parse::<i64>().map(Into::into).map_err(|_| {
                (
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                )
            }),
            _ => Err(("int_type", "Input should be a valid integer")),
        };
        match parsed {
            // Errors name the input as given; what passes is stored converted.
            Ok(number) => self.within_bounds(schema, Value::Number(number), value, loc),
            Err((kind, msg)) => self.error(kind, loc, msg.into(), value, None),
        }
    }

    fn number(&mut self, schema: &Value, value: &mut Value, loc: &[Value]) {
        let parsed = match &*value {
            Value::Number(_) => Ok(value.clone()),
            Value::String(text) => match text.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(json!(f)),
                _ => Err((
                    "float_parsing",
                    "Input should be a valid number, unable to parse string as a number",
                )),
            },
            _ => Err(("float_type", "Input should be a valid number")),
        };
        match parsed {
            Ok(number) => self.within_bounds(schema, number, value, loc),
            Err((kind, msg)) => self.error(kind, loc, msg.into(), value, None),
        }
    }

    /// Checks `number` (what `input` reads as) against the schema's bounds: the first one
    /// it breaks is recorded, else `input` becomes `number`.
    fn within_bounds(&mut self, schema: &Value, number: Value, input: &mut Value, loc: &[Value]) {
        let n = number.as_f64().unwrap_or_default();
        type Check = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            fn(f64, f64) -> bool,
        );
        let checks: [Check; 4] = [
            (
                "minimum",
                "greater_than_equal",
                "greater than or equal to",
                "ge",
                |n, b| n >= b,
            ),
            (
                "maximum",
                "less_than_equal",
                "less than or equal to",
                "le",
                |n, b| n <= b,
            ),
            (
                "exclusiveMinimum",
                "greater_than",
                "greater than",
                "gt",
                |n, b| n > b,
            ),
            (
                "exclusiveMaximum",
                "less_than",
                "less than",
                "lt",
                |n, b| n < b,
            ),
        ];
        for (keyword, kind, words, key, holds) in checks {
            let bound = &schema[keyword];
            if bound.as_f64().is_some_and(|b| !holds(n, b)) {
                let msg = format!("Input should be {words} {bound}");
                return self.error(kind, loc, msg, input, Some(json!({ key: bound })));
            }
        }
        *input = number;
    }

    fn boolean(&mut self, value: &mut Value, loc: &[Value]) {
        let parsed = match &*value {
            Value::Bool(_) => return,
            Value::Number(n) => match n.as_f64() {
                Some(f) if f == 0.0 || f == 1.0 => Some(f == 1.0),
                _ => None,
            },
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
                "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
                _ => None,
            },
            _ => {
                let msg = "Input should be a valid boolean".into();
                return self.error("bool_type", loc, msg, value, None);
            }
        };
        match parsed {
            Some(b) => *value = Value::Bool(b),
            None => {
                let msg = "Input should be a valid boolean, unable to interpret input".into();
                self.error("bool_parsing", loc, msg, value, None);
            }
        }
    }

    fn array(&mut self, schema: &Value, value: &mut Value, loc: &mut Vec<Value>) {
        let Value::Array(items) = value else {
            let msg = "Input should be a valid list".into();
            return self.error("list_type", loc, msg, value, None);
        };
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter_mut().enumerate() {
                loc.push(json!(i));
                self.check(item_schema, item, loc);
                loc.pop();
            }
        }
        let len = items.len() as u64;
        if let Some(min) = schema["minItems"].as_u64().filter(|min| len < *min) {
            let msg = format!(
                "List should have at least {min} item{} after validation, not {len}",
                plural(min)
            );
            let ctx = json!({ "field_type": "List", "min_length": min, "actual_length": len });
            self.error("too_short", loc, msg, value, Some(ctx));
        }
    }

    fn object(
        &mut self,
        schema: &Value,
        value: &mut Value,
        loc: &mut Vec<Value>,
        class: Option<&str>,
        top_level: bool,
    ) {
        let properties = schema["properties"].as_object();
        let Value::Object(fields) = value else {
            let (kind, msg, ctx) = match (properties, class) {
                (Some(_), _) if top_level => (
                    "model_attributes_type",
                    "Input should be a valid dictionary or object to extract fields from".into(),
                    None,
                ),
                (Some(_), Some(class)) => (
                    "model_type",
                    format!("Input should be a valid dictionary or instance of {class}"),
                    Some(json!({ "class_name": class })),
                ),
                _ => (
                    "dict_type",
                    "Input should be a valid dictionary".into(),
                    None,
                ),
            };
            return self.error(kind, loc, msg, value, ctx);
        };
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let ours = class.map_or(&[][..], normalized_first);
        for (name, field_schema) in properties.into_iter().flatten() {
            loc.push(json!(name));
            match fields.get_mut(name) {
                // A before-validator runs on a value that is there; a missing one is missing.
                Some(_) if ours.contains(&name.as_str()) => {}
                Some(field) => self.check(field_schema, field, loc),
                None if required.contains(&name.as_str()) => {
                    let input = Value::Object(fields.clone());
                    self.error("missing", loc, "Field required".into(), &input, None);
                }
                None => {}
            }
            loc.pop();
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|s| s.is_object()) {
            for (key, field) in fields.iter_mut() {
                if properties.is_some_and(|p| p.contains_key(key)) {
                    continue;
                }
                loc.push(json!(key));
                self.check(extra, field, loc);
                loc.pop();
            }
        }
    }
}

/// Fields that the reference's models run through a `mode="before"` validator (trimming,
/// aliases, blank-as-null) before their type is checked, so the schema does not say what
/// they accept. The domain code applies those rules and answers in the same shape.
fn normalized_first(class: &str) -> &'static [&'static str] {
    match class {
        "AgentCreate" | "AgentUpdate" => {
            &["identity_template", "soul_template", "identity_profile"]
        }
        "BoardOnboardingUserProfile" => {
            &["preferred_name", "pronouns", "timezone", "notes", "context"]
        }
        "BoardOnboardingLeadAgentDraft" => &[
            "autonomy_level",
            "verbosity",
            "output_format",
            "update_cadence",
            "custom_instructions",
            "identity_profile",
        ],
        "GatewayCreate" | "GatewayUpdate" => &["token"],
        "TagCreate" | "TagUpdate" => &["slug", "color"],
        "TaskCustomFieldDefinitionCreate" => &[
            "field_key",
            "label",
            "field_type",
            "validation_regex",
            "ui_visibility",
        ],
        "TaskCustomFieldDefinitionUpdate" => &["field_type", "validation_regex", "ui_visibility"],
        "TaskUpdate" => &["comment"],
        _ => &[],
    }
}

/// pydantic's name for a union member in `loc`.
fn member_tag(member: &Value) -> String {
    if let Some(name) = member["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        return name.to_string();
    }
    match member["type"].as_str() {
        Some("string") => "str",
        Some("integer") => "int",
        Some("number") => "float",
        Some("boolean") => "bool",
        Some("array") => "list[any]",
        Some("object") => "dict[str,any]",
        _ => "any",
    }
    .to_string()
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// How Python prints a literal in "Input should be 'a' or 'b'".
fn python_repr(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// The reason pydantic's date parser gives for text that is not a date or a datetime.
fn datetime_error(text: &str) -> &'static str {
    let bytes = text.as_bytes();
    if bytes.len() < 10 {
        "input is too short"
    } else if !bytes[..4].iter().all(u8::is_ascii_digit) {
        "invalid character in year"
    } else if bytes[4] != b'-' || bytes[7] != b'-' {
        "invalid date separator, expected `-`"
    } else if !bytes[5..7].iter().all(u8::is_ascii_digit) {
        "invalid character in month"
    } else if !bytes[8..10].iter().all(u8::is_ascii_digit) {
        "invalid character in day"
    } else {
        "unexpected extra characters at the end of the input"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(method: Method, path: &str, mut value: Value) -> Vec<Value> {
        operation(&method, path)
            .unwrap_or_else(|| panic!("no operation for {path}"))
            .check_body(Some(&mut value))
    }

    #[test]
    fn every_missing_required_field_is_listed_in_field_order() {
        let errors = body(Method::POST, "/api/v1/boards", json!({}));
        let locs: Vec<&Value> = errors.iter().map(|e| &e["loc"]).collect();
        assert_eq!(
            locs,
            [
                &json!(["body", "name"]),
                &json!(["body", "slug"]),
                &json!(["body", "description"])
            ]
        );
        assert_eq!(errors[0]["type"], "missing");
        assert_eq!(errors[0]["input"], json!({}));
    }

    #[test]
    fn wrong_types_use_pydantics_words() {
        let errors = body(
            Method::POST,
            "/api/v1/boards",
            json!({"name": 5, "slug": "s", "description": "d", "gateway_id": "nope",
                   "max_agents": -1, "goal_confirmed": "maybe", "target_date": "soon"}),
        );
        let kinds: Vec<&str> = errors.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "string_type",
                "uuid_parsing",
                "datetime_from_date_parsing",
                "bool_parsing",
                "greater_than_equal"
            ]
        );
        assert_eq!(errors[1]["loc"], json!(["body", "gateway_id"]));
        assert!(errors[1]["msg"]
            .as_str()
            .unwrap()
            .starts_with("Input should be a valid UUID, invalid"));
        assert_eq!(errors[2]["ctx"], json!({"error": "input is too short"}));
    }

    #[test]
    fn literals_list_what_is_allowed() {
        let errors = body(
            Method::POST,
            "/api/v1/boards/00000000-0000-0000-0000-000000000001/tasks",
            json!({"title": "t", "status": "bogus"}),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["type"], "literal_error");
        assert_eq!(
            errors[0]["msg"],
            "Input should be 'inbox', 'in_progress', 'review' or 'done'"
        );
        assert_eq!(
            errors[0]["ctx"]["expected"],
            "'inbox', 'in_progress', 'review' or 'done'"
        );
    }

    #[test]
    fn strings_of_numbers_are_converted_as_in_lax_mode() {
        let mut value = json!({"name": "n", "slug": "s", "description": "d", "max_agents": "3"});
        let op = operation(&Method::POST, "/api/v1/boards").unwrap();
        assert!(op.check_body(Some(&mut value)).is_empty());
        assert_eq!(value["max_agents"], 3);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_as_fastapi_does() {
        let errors = body(Method::POST, "/api/v1/boards", json!([1]));
        assert_eq!(errors[0]["type"], "model_attributes_type");
        assert_eq!(errors[0]["loc"], json!(["body"]));
    }

    #[test]
    fn parameters_are_checked_with_their_names() {
        let path = "/api/v1/boards/nope/tasks";
        let op = operation(&Method::GET, path).unwrap();
        let errors = op.check_parameters(path, "limit=500&offset=x&unassigned=perhaps");
        let locs: Vec<&Value> = errors.iter().map(|e| &e["loc"]).collect();
        assert_eq!(
            locs,
            [
                &json!(["query", "unassigned"]),
                &json!(["query", "limit"]),
                &json!(["query", "offset"])
            ]
        );
        assert_eq!(errors[1]["type"], "less_than_equal");
        assert_eq!(
            errors[1]["msg"],
            "Input should be less than or equal to 200"
        );
        assert_eq!(errors[1]["input"], "500", "the input as given");
        assert_eq!(errors[1]["ctx"], json!({"le": 200}));

        let path = "/api/v1/gateways/nope";
        let errors = operation(&Method::GET, path)
            .unwrap()
            .check_parameters(path, "");
        assert_eq!(errors[0]["type"], "uuid_parsing");
        assert_eq!(errors[0]["loc"], json!(["path", "gateway_id"]));
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        let op = operation(&Method::GET, "/api/v1/gateways/status").unwrap();
        assert!(op
            .check_parameters("/api/v1/gateways/status", "")
            .is_empty());
    }

    #[test]
    fn missing_required_query_parameters_are_named() {
        let op = operation(&Method::GET, "/api/v1/calendar/events").unwrap();
        let errors = op.check_parameters("/api/v1/calendar/events", "");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0]["loc"], json!(["query", "start_date"]));
        assert_eq!(errors[0]["type"], "missing");
    }
}
