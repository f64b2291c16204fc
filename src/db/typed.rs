//! Queries sent typed: parsed, bound and run in one round trip instead of a prepare (parse
//! and describe) first, which halves the round trips of a read and skips a parse.
//! `query_typed` needs each parameter's PostgreSQL type; it is found by asking the value
//! which of the common types it encodes as (`ToSql::to_sql_checked` refuses the others).
//! A parameter of any other type sends the query the prepared way.

use bytes::BytesMut;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Error, GenericClient, Row};

/// Tried in order: the first that a value takes is what it is sent as. `JSONB` before
/// `JSON`, and `TEXT` for every string, as the schema uses them.
const TYPES: [Type; 13] = [
    Type::UUID,
    Type::TEXT,
    Type::INT8,
    Type::BOOL,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::JSONB,
    Type::UUID_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
    Type::JSONB_ARRAY,
    Type::BYTEA,
];

type Param<'a> = &'a (dyn ToSql + Sync);

/// The parameters with their types, if every one is of a type in `TYPES`.
fn with_types<'a>(params: &[Param<'a>]) -> Option<Vec<(Param<'a>, Type)>> {
    let mut scratch = BytesMut::new();
    params
        .iter()
        .map(|p| {
            TYPES
                .iter()
                .find(|ty| {
                    scratch.clear();
                    p.to_sql_checked(ty, &mut scratch).is_ok()
                })
                .map(|ty| (*p, ty.clone()))
        })
        .collect()
}

pub async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, Error> {
    match with_types(params) {
        Some(typed) => client.query_typed(sql, &typed).await,
        None => client.query(sql, params).await,
    }
}

pub async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<Row>, Error> {
    match with_types(params) {
        Some(typed) => client.query_typed_opt(sql, &typed).await,
        None => client.query_opt(sql, params).await,
    }
}

pub async fn query_one(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Row, Error> {
    match with_types(params) {
        Some(typed) => client.query_typed_one(sql, &typed).await,
        None => client.query_one(sql, params).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    #[test]
    fn values_are_sent_as_their_own_types() {
        let (id, text, n, flag) = (Uuid::new_v4(), "x".to_string(), 5i64, true);
        let (none, list, now): (Option<Uuid>, Vec<String>, _) = (None, vec![], Utc::now());
        let json = serde_json::json!({"a": 1});
        let typed = with_types(&[&id, &text, &n, &flag, &none, &list, &now, &json]).unwrap();
        let types: Vec<Type> = typed.into_iter().map(|(_, t)| t).collect();
        assert_eq!(
            types,
            [
                Type::UUID,
                Type::TEXT,
                Type::INT8,
                Type::BOOL,
                Type::UUID,
                Type::TEXT_ARRAY,
                Type::TIMESTAMPTZ,
                Type::JSONB
            ]
        );
        // A type outside the list: the query goes the prepared way.
        assert!(with_types(&[&1.5f32]).is_none());
    }
}
