//! Link rows that keep the order of the list they were given (task tags, dependencies,
//! approval tasks): reads order them by `created_at`.

use uuid::Uuid;

use crate::db::GenericClient;
use crate::domain::DomainResult;

/// Inserts a row of `table` per id of `items` (into `item_column`), each with
/// `owner_column` = `owner` and, if given, a fixed `(column, value)`. Order is kept through
/// increasing `created_at` offsets (one statement, one `now()`). Table and column names are
/// the callers' constants, never input.
pub async fn insert_ordered(
    client: &impl GenericClient,
    table: &str,
    (owner_column, owner): (&str, Uuid),
    fixed: Option<(&str, Uuid)>,
    item_column: &str,
    items: &[Uuid],
) -> DomainResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let (fixed_column, fixed_value) = match fixed {
        Some((column, value)) => (format!(", {column}"), Some(value)),
        None => (String::new(), None),
    };
    let fixed_select = if fixed.is_some() { ", $3" } else { "" };
    let sql = format!(
        "INSERT INTO {table} (id, {owner_column}{fixed_column}, {item_column}, created_at) \
         SELECT gen_random_uuid(), $1{fixed_select}, i.id, now() + i.ord * interval '1 microsecond' \
         FROM unnest($2::uuid[]) WITH ORDINALITY AS i(id, ord)"
    );
    match fixed_value {
        Some(value) => client.execute(&sql, &[&owner, &items, &value]).await?,
        None => client.execute(&sql, &[&owner, &items]).await?,
    };
    Ok(())
}
