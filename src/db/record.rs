//! Rows by name: one declaration gives a record its fields, its column list and its row
//! mapping together, so adding a column is one line and a list can never drift from the
//! code that reads it.
//!
//! ```ignore
//! crate::db::record! {
//!     /// `BoardRead` of the reference API.
//!     #[derive(Debug, Clone, Serialize)]
//!     pub struct Board in "b" {
//!         pub id: Uuid,
//!         pub name: String,
//!         /// A computed column: any SQL expression, selected `AS` the field's name.
//!         pub task_count: i64 = "(SELECT count(*) FROM tasks t WHERE t.board_id = b.id)",
//!     }
//! }
//! // SELECT {Board::COLUMNS} FROM boards b ...   →   Board::from_row(&row)?
//! ```
//!
//! Reading checks each column's name as well as its type: a query that selects other
//! columns, or the same ones in another order, answers a [`RowError`] (a 500 naming the
//! record and the column), never a panic and never a value read from the wrong column.

use std::fmt;

use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

/// A row that does not have the shape a record (or a query's own read) expects.
#[derive(Debug)]
pub struct RowError {
    pub record: &'static str,
    pub column: &'static str,
    pub problem: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row for {} at column {}: {}",
            self.record, self.column, self.problem
        )
    }
}

impl std::error::Error for RowError {}

/// A record read from consecutive columns of a row.
pub trait Record: Sized {
    /// The select list, with the declared table alias (`b.id, b.name, …`).
    const COLUMNS: &'static str;
    /// How many columns the record takes.
    const WIDTH: usize;

    /// The record in columns `at..at + WIDTH` (records joined in one row follow each other).
    fn from_row_at(row: &Row, at: usize) -> Result<Self, RowError>;

    fn from_row(row: &Row) -> Result<Self, RowError> {
        Self::from_row_at(row, 0)
    }

    /// Every row as a record.
    fn from_rows(rows: &[Row]) -> Result<Vec<Self>, RowError> {
        rows.iter().map(Self::from_row).collect()
    }
}

/// Column `*at` of `row`, which must be named `name`; advances `at`.
pub fn column<'a, T: FromSql<'a>>(
    row: &'a Row,
    at: &mut usize,
    record: &'static str,
    name: &'static str,
) -> Result<T, RowError> {
    let i = *at;
    *at += 1;
    let error = |problem: String| RowError {
        record,
        column: name,
        problem,
    };
    match row.columns().get(i) {
        Some(c) if c.name() == name => row.try_get(i).map_err(|e| error(e.to_string())),
        Some(c) => Err(error(format!("column {i} is named {}", c.name()))),
        None => Err(error(format!("the row has only {} columns", row.len()))),
    }
}

/// A column of a query's own read (not a record), by name: a wrong name or type answers a
/// [`RowError`] instead of panicking.
pub fn get<'a, T: FromSql<'a>>(row: &'a Row, name: &'static str) -> Result<T, RowError> {
    row.try_get(name).map_err(|e| RowError {
        record: "query",
        column: name,
        problem: e.to_string(),
    })
}

/// `"a, b, "` without its last separator, at compile time.
pub const fn trim_list(list: &'static str) -> &'static str {
    match list.len() {
        0 | 1 => list,
        n => list.split_at(n - 2).0,
    }
}

/// Declares a record: the struct, its `Record` impl with the column list (each field a
/// column of the table alias, or `= "SQL expression"` selected as the field's name) and the
/// row mapping in the same order. See the module doc.
#[macro_export]
macro_rules! record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident in $alias:literal {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $ty:ty $(= $expr:literal)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl $crate::db::record::Record for $name {
            const COLUMNS: &'static str = $crate::db::record::trim_list(concat!(
                $( $crate::record!(@column $alias, $field $(, $expr)?), ", ", )*
            ));
            const WIDTH: usize = [$(stringify!($field)),*].len();

            fn from_row_at(
                row: &::tokio_postgres::Row,
                at: usize,
            ) -> ::std::result::Result<Self, $crate::db::record::RowError> {
                let mut i = at;
                Ok($name {
                    $( $field: $crate::db::record::column(
                        row, &mut i, stringify!($name), stringify!($field),
                    )?, )*
                })
            }
        }
    };
    (@column $alias:literal, $field:ident) => { concat!($alias, ".", stringify!($field)) };
    (@column $alias:literal, $field:ident, $expr:literal) => {
        concat!($expr, " AS ", stringify!($field))
    };
}

pub use crate::record;

#[cfg(test)]
mod tests {
    use super::*;

    record! {
        #[derive(Debug)]
        struct Sample in "s" {
            id: i64,
            label: String = "upper(s.name)",
            note: Option<String>,
        }
    }

    #[test]
    fn the_column_list_follows_the_fields() {
        assert_eq!(Sample::COLUMNS, "s.id, upper(s.name) AS label, s.note");
        assert_eq!(Sample::WIDTH, 3);
        assert_eq!(trim_list(""), "");
        let read = |s: Sample| (s.id, s.label, s.note);
        let _ = read;
    }
}
