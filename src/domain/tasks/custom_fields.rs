//! Task custom fields (domain.md §A12): organization definitions and their admin CRUD,
//! their binding to boards, task values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::support::access;
use crate::domain::support::validation::{model_error, Invalid};
use crate::domain::tasks::field_values::{full_match, value_problem, STRING_FIELD_TYPES};
use crate::domain::{DomainError, DomainResult};

crate::db::record! {
    /// `TaskCustomFieldDefinitionRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct FieldDefinition in "d" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub field_key: String,
        pub label: String,
        pub field_type: String,
        pub ui_visibility: String,
        pub validation_regex: Option<String>,
        pub description: Option<String>,
        pub required: bool,
        #[schema(value_type = Option<Object>)]
        pub default_value: Option<Value>,
        /// The bound boards, in id order.
        pub board_ids: Vec<Uuid> = "ARRAY(SELECT b.board_id FROM board_task_custom_fields b \
            WHERE b.task_custom_field_definition_id = d.id ORDER BY b.board_id)",
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

fn default_field_type() -> String {
    "text".into()
}
fn default_visibility() -> String {
    "always".into()
}

/// `TaskCustomFieldDefinitionCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FieldDefinitionCreate {
    pub field_key: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "default_field_type")]
    pub field_type: String,
    #[serde(default = "default_visibility")]
    pub ui_visibility: String,
    #[serde(default)]
    pub validation_regex: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub default_value: Option<Value>,
    pub board_ids: Vec<Uuid>,
}

/// `TaskCustomFieldDefinitionUpdate`: absent fields stay, `null` clears the nullable ones
/// and is refused on the others; `board_ids` replaces the bindings (`null` keeps them).
/// `field_key` is fixed at creation, so its presence alone is refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FieldDefinitionUpdate {
    #[serde(default, deserialize_with = "present")]
    #[schema(ignore)]
    pub field_key: bool,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub field_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub ui_visibility: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub validation_regex: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<bool>)]
    pub required: Option<Option<bool>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub default_value: Option<Option<Value>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub board_ids: Option<Option<Vec<Uuid>>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A field type, with the aliases the reference accepts.
fn field_type_of(raw: &str) -> Result<&'static str, String> {
    Ok(match raw.trim().to_lowercase().as_str() {
        "text" => "text",
        "text_long" | "text (long)" | "long_text" => "text_long",
        "integer" => "integer",
        "decimal" => "decimal",
        "boolean" | "true/false" => "boolean",
        "date" => "date",
        "date_time" | "date & time" | "datetime" => "date_time",
        "url" => "url",
        "json" => "json",
        _ => {
            return Err(
                "field_type must be one of: text, text_long, integer, decimal, \
                        boolean, date, date_time, url, json"
                    .into(),
            )
        }
    })
}

fn visibility_of(raw: &str) -> Result<&'static str, String> {
    Ok(match raw.trim().to_lowercase().as_str() {
        "always" => "always",
        "if_set" | "if set" => "if_set",
        "hidden" => "hidden",
        _ => return Err("ui_visibility must be one of: always, if_set, hidden".into()),
    })
}

/// A trimmed pattern that compiles; blank means none.
fn regex_of(raw: &str) -> Result<Option<String>, String> {
    let pattern = raw.trim();
    if pattern.is_empty() {
        return Ok(None);
    }
    full_match(pattern).map_err(|e| format!("validation_regex is invalid: {e}"))?;
    Ok(Some(pattern.to_string()))
}

/// Ids in first-seen order without repeats.
fn dedup(ids: &[Uuid]) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

/// The definition as a whole: a regex only on string types, and a default that is a valid
/// value. Failures answer 422 with a plain string, as the reference does past its models.
fn check_definition(
    field_type: &str,
    regex: Option<&str>,
    default_value: Option<&Value>,
) -> DomainResult<()> {
    if regex.is_some() && !STRING_FIELD_TYPES.contains(&field_type) {
        return Err(DomainError::unprocessable(ERR_REGEX_TYPE));
    }
    match default_value.and_then(|v| value_problem(field_type, regex, v)) {
        Some(reason) => Err(DomainError::unprocessable(reason)),
        None => Ok(()),
    }
}

const ERR_REGEX_TYPE: &str = "validation_regex is only supported for string field types.";
const ERR_KEY_TAKEN: &str = "Field key already exists in this organization.";

/// Every board must be the organization's; 422 lists the others (in id order).
async fn require_org_boards(
    client: &impl GenericClient,
    organization_id: Uuid,
    board_ids: &[Uuid],
) -> DomainResult<()> {
    let found: Vec<Uuid> = client
        .query(
            "SELECT id FROM boards WHERE organization_id = $1 AND id = ANY($2)",
            &[&organization_id, &board_ids],
        )
        .await?
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?;
    let mut invalid: Vec<Uuid> = board_ids
        .iter()
        .filter(|id| !found.contains(id))
        .copied()
        .collect();
    if invalid.is_empty() {
        return Ok(());
    }
    invalid.sort_unstable();
    Err(DomainError::Unprocessable(json!({
        "message": "Some selected boards are invalid for this organization.",
        "invalid_board_ids": invalid,
    })))
}

async fn find(
    client: &impl GenericClient,
    organization_id: Uuid,
    definition_id: Uuid,
) -> DomainResult<FieldDefinition> {
    client
        .query_opt(
            &format!(
                "SELECT {columns} FROM task_custom_field_definitions d \
                 WHERE d.id = $1 AND d.organization_id = $2 FOR NO KEY UPDATE OF d",
                columns = FieldDefinition::COLUMNS
            ),
            &[&definition_id, &organization_id],
        )
        .await?
        .as_ref()
        .map(FieldDefinition::from_row)
        .transpose()?
        .ok_or_else(DomainError::not_found)
}

/// Adds the missing bindings and drops the others.
async fn bind_boards(
    client: &impl GenericClient,
    definition_id: Uuid,
    board_ids: &[Uuid],
) -> DomainResult<()> {
    client
        .execute(
            "DELETE FROM board_task_custom_fields \
             WHERE task_custom_field_definition_id = $1 AND NOT (board_id = ANY($2))",
            &[&definition_id, &board_ids],
        )
        .await?;
    client
        .execute(
            "INSERT INTO board_task_custom_fields (id, board_id, task_custom_field_definition_id) \
             SELECT gen_random_uuid(), b, $1 FROM unnest($2::uuid[]) AS b \
             ON CONFLICT (board_id, task_custom_field_definition_id) DO NOTHING",
            &[&definition_id, &board_ids],
        )
        .await?;
    Ok(())
}

/// The organization's definitions by label (a plain list: the reference does not page it).
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<Vec<FieldDefinition>> {
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM task_custom_field_definitions d \
                 WHERE d.organization_id = $1 ORDER BY lower(d.label), d.created_at, d.id",
                columns = FieldDefinition::COLUMNS
            ),
            &[&principal.organization.id],
        )
        .await?;
    Ok(FieldDefinition::from_rows(&rows)?)
}

/// Creates a definition bound to `board_ids` (org admin). The answer lists the boards in
/// the order given, as the reference does.
pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: FieldDefinitionCreate,
) -> DomainResult<FieldDefinition> {
    access::require_org_admin(&principal.member)?;
    let mut invalid = Invalid::default();
    let key = input.field_key.trim().to_string();
    let key = if key.is_empty() {
        invalid.value_error("field_key", "field_key is required", json!(input.field_key));
        None
    } else {
        Some(key)
    };
    let label = match &input.label {
        None => Some(None),
        Some(raw) if raw.trim().is_empty() => {
            invalid.value_error("label", "label is required", json!(raw));
            None
        }
        Some(raw) => Some(Some(raw.trim().to_string())),
    };
    let field_type = invalid.check(
        "field_type",
        &input.field_type,
        field_type_of(&input.field_type),
    );
    let visibility = invalid.check(
        "ui_visibility",
        &input.ui_visibility,
        visibility_of(&input.ui_visibility),
    );
    let regex = match &input.validation_regex {
        None => Some(None),
        Some(raw) => invalid.check("validation_regex", raw, regex_of(raw)),
    };
    let board_ids = if input.board_ids.is_empty() {
        invalid.empty_list("board_ids");
        None
    } else {
        Some(dedup(&input.board_ids))
    };
    let (Some(key), Some(label), Some(field_type), Some(visibility), Some(regex), Some(board_ids)) =
        (key, label, field_type, visibility, regex, board_ids)
    else {
        return Err(invalid.into_error());
    };
    if regex.is_some() && !STRING_FIELD_TYPES.contains(&field_type) {
        return Err(model_error(ERR_REGEX_TYPE));
    }
    let org = principal.organization.id;
    require_org_boards(client, org, &board_ids).await?;
    let default_value = input.default_value;
    check_definition(field_type, regex.as_deref(), default_value.as_ref())?;
    let label = label.unwrap_or_else(|| key.clone());
    let id = Uuid::new_v4();
    let inserted = client
        .execute(
            "INSERT INTO task_custom_field_definitions (id, organization_id, field_key, label, field_type, \
               ui_visibility, validation_regex, description, required, default_value) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &id, &org, &key, &label, &field_type, &visibility, &regex, &input.description,
                &input.required, &default_value,
            ],
        )
        .await;
    match inserted {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(DomainError::conflict(ERR_KEY_TAKEN))
        }
        other => other?,
    };
    bind_boards(client, id, &board_ids).await?;
    let mut definition = find(client, org, id).await?;
    definition.board_ids = board_ids;
    Ok(definition)
}

/// Updates a definition (org admin), re-checking the regex and default against the
/// resulting type. Values already stored on tasks are kept as they are.
pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    definition_id: Uuid,
    patch: FieldDefinitionUpdate,
) -> DomainResult<FieldDefinition> {
    access::require_org_admin(&principal.member)?;
    if patch.field_key {
        return Err(model_error("field_key cannot be changed after creation."));
    }
    let mut invalid = Invalid::default();
    let label = match &patch.label {
        Some(Some(raw)) => invalid.non_empty("label", raw),
        _ => None,
    };
    let field_type = match &patch.field_type {
        Some(Some(raw)) => invalid.check("field_type", raw, field_type_of(raw)),
        _ => None,
    };
    let visibility = match &patch.ui_visibility {
        Some(Some(raw)) => invalid.check("ui_visibility", raw, visibility_of(raw)),
        _ => None,
    };
    let regex = match &patch.validation_regex {
        Some(Some(raw)) => invalid.check("validation_regex", raw, regex_of(raw)),
        Some(None) => Some(None),
        None => None,
    };
    let board_ids = match &patch.board_ids {
        Some(Some(ids)) if ids.is_empty() => {
            invalid.value_error(
                "board_ids",
                "board_ids must include at least one board",
                json!([]),
            );
            None
        }
        Some(Some(ids)) => Some(dedup(ids)),
        _ => None,
    };
    invalid.finish()?;
    let nulled: Vec<&str> = [
        ("label", patch.label.as_ref().is_some_and(Option::is_none)),
        (
            "field_type",
            patch.field_type.as_ref().is_some_and(Option::is_none),
        ),
        (
            "ui_visibility",
            patch.ui_visibility.as_ref().is_some_and(Option::is_none),
        ),
        (
            "required",
            patch.required.as_ref().is_some_and(Option::is_none),
        ),
    ]
    .into_iter()
    .filter_map(|(name, null)| null.then_some(name))
    .collect();
    if !nulled.is_empty() {
        return Err(model_error(&format!(
            "{} cannot be null; omit the field to leave it unchanged",
            nulled.join(", ")
        )));
    }
    if patch.label.is_none()
        && patch.field_type.is_none()
        && patch.ui_visibility.is_none()
        && patch.validation_regex.is_none()
        && patch.description.is_none()
        && patch.required.is_none()
        && patch.default_value.is_none()
        && patch.board_ids.is_none()
    {
        return Err(model_error("At least one field is required"));
    }

    let org = principal.organization.id;
    let mut definition = find(client, org, definition_id).await?;
    if let Some(ids) = &board_ids {
        require_org_boards(client, org, ids).await?;
    }
    if let Some(v) = label {
        definition.label = v;
    }
    if let Some(v) = field_type {
        definition.field_type = v.into();
    }
    if let Some(v) = visibility {
        definition.ui_visibility = v.into();
    }
    if let Some(v) = regex {
        definition.validation_regex = v;
    }
    if let Some(v) = patch.description {
        definition.description = v;
    }
    if let Some(Some(v)) = patch.required {
        definition.required = v;
    }
    if let Some(v) = patch.default_value {
        definition.default_value = v;
    }
    check_definition(
        &definition.field_type,
        definition.validation_regex.as_deref(),
        definition.default_value.as_ref(),
    )?;
    client
        .execute(
            "UPDATE task_custom_field_definitions SET label = $3, field_type = $4, ui_visibility = $5, \
               validation_regex = $6, description = $7, required = $8, default_value = $9, updated_at = now() \
             WHERE id = $1 AND organization_id = $2",
            &[
                &definition.id, &org, &definition.label, &definition.field_type,
                &definition.ui_visibility, &definition.validation_regex, &definition.description,
                &definition.required, &definition.default_value,
            ],
        )
        .await?;
    if let Some(ids) = &board_ids {
        bind_boards(client, definition.id, ids).await?;
    }
    let mut updated = find(client, org, definition.id).await?;
    if let Some(ids) = board_ids {
        updated.board_ids = ids;
    }
    Ok(updated)
}

const ERR_VALUES_EXIST: &str = "Cannot delete a custom field definition while task values exist.";

/// Deletes a definition and its bindings (org admin); refused while tasks hold values of it.
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    definition_id: Uuid,
) -> DomainResult<()> {
    access::require_org_admin(&principal.member)?;
    let definition = find(client, principal.organization.id, definition_id).await?;
    let in_use = client
        .query_opt(
            "SELECT 1 FROM task_custom_field_values WHERE task_custom_field_definition_id = $1 LIMIT 1",
            &[&definition.id],
        )
        .await?;
    if in_use.is_some() {
        return Err(DomainError::conflict(ERR_VALUES_EXIST));
    }
    // A value written since the check is caught by the RESTRICT foreign key.
    match client
        .execute(
            "DELETE FROM task_custom_field_definitions WHERE id = $1",
            &[&definition.id],
        )
        .await
    {
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(DomainError::conflict(ERR_VALUES_EXIST))
        }
        other => other.map(drop).map_err(DomainError::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_and_visibility_aliases_are_accepted() {
        assert_eq!(field_type_of(" Text (long) "), Ok("text_long"));
        assert_eq!(field_type_of("true/false"), Ok("boolean"));
        assert_eq!(field_type_of("Date & Time"), Ok("date_time"));
        assert!(field_type_of("number").is_err());
        assert_eq!(visibility_of("if set"), Ok("if_set"));
        assert!(visibility_of("never").is_err());
    }

    #[test]
    fn regexes_match_the_whole_value_and_only_on_string_types() {
        assert_eq!(value_problem("text", Some("[a-z]+"), &json!("abc")), None);
        assert_eq!(
            value_problem("text", Some("[a-z]+"), &json!("abc1")).as_deref(),
            Some("does not match validation_regex")
        );
        assert_eq!(value_problem("text", Some("[a-z]+"), &Value::Null), None);
        assert!(check_definition("integer", Some("\\d+"), None).is_err());
        assert!(check_definition("integer", None, Some(&json!("1"))).is_err());
        assert!(check_definition("integer", None, Some(&json!(1))).is_ok());
        assert!(regex_of("(").is_err());
        assert_eq!(regex_of("  "), Ok(None));
    }
}
