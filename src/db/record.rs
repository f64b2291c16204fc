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
//! A record whose value is not only its columns names a hook after its alias,
//! `pub struct Agent in "a" after Agent::settle { … }`: a `fn(&mut Agent)` run on every
//! record read, once all its columns are in (a status computed from two of them, say).
//!
//! Reading checks each column's name as well as its type: a query that selects other
//! columns, or the same ones in another order, answers a [`RowError`] (a 500 naming the
//! record and the column), never a panic and never a value read from the wrong column.

use std::fmt;

use tokio_postgres::types::{FromSql, Json};
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
    // The one read by position: checked against the column's name first, and `try_get`
    // answers a wrong type as an error, never a panic.
    match row.columns().get(i) {
        Some(c) if c.name() == name => row.try_get(i).map_err(|e| error(describe(&e))),
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
        problem: describe(&e),
    })
}

/// A failed read with its cause ("error deserializing column 1" alone says nothing of why).
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// `"a, b, "` without its last separator, at compile time.
pub const fn trim_list(list: &'static str) -> &'static str {
    match list.len() {
        0 | 1 => list,
        n => list.split_at(n - 2).0,
    }
}

/// How a field declared `field: T as Raw` is made from its column, read as `Raw`: a JSON
/// column read through `Json` (`tags: Vec<String> as Json<Vec<String>>`, or with `Option`
/// around both for a nullable one).
pub trait Decode<T> {
    fn decode(self) -> T;
}

impl<T> Decode<T> for Json<T> {
    fn decode(self) -> T {
        self.0
    }
}

impl<T> Decode<Option<T>> for Option<Json<T>> {
    fn decode(self) -> Option<T> {
        self.map(|json| json.0)
    }
}

/// Declares a record: the struct, its `Record` impl with the column list (each field a
/// column of the table alias, or `= "SQL expression"` selected as the field's name) and the
/// row mapping in the same order (a field `T as Raw` reads its column as `Raw`, see
/// [`Decode`]), and the optional `after` hook run on each record read. See the module doc.
#[macro_export]
macro_rules! record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident in $alias:literal $(after $hook:path)? {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $ty:ty $(as $raw:ty)? $(= $expr:literal)?
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
                #[allow(unused_mut)]
                let mut record = $name {
                    $( $field: $crate::record!(@read row, i, $name, $field, $ty $(, $raw)?), )*
                };
                $( $hook(&mut record); )?
                Ok(record)
            }
        }
    };
    (@read $row:ident, $i:ident, $name:ident, $field:ident, $ty:ty) => {
        $crate::db::record::column::<$ty>($row, &mut $i, stringify!($name), stringify!($field))?
    };
    (@read $row:ident, $i:ident, $name:ident, $field:ident, $ty:ty, $raw:ty) => {
        $crate::db::record::Decode::<$ty>::decode($crate::db::record::column::<$raw>(
            $row,
            &mut $i,
            stringify!($name),
            stringify!($field),
        )?)
    };
    (@column $alias:literal, $field:ident) => { concat!($alias, ".", stringify!($field)) };
    (@column $alias:literal, $field:ident, $expr:literal) => {
        concat!($expr, " AS ", stringify!($field))
    };
}

pub use crate::record;

/// `FromSql` for an enum stored as text (`text`, `varchar`…), read with its own
/// `parse(&str) -> Option<Self>`: a value it does not know is an error of the read (a
/// [`RowError`] through [`column`] or [`get`]), never a default.
#[macro_export]
macro_rules! text_enum_from_sql {
    ($ty:ty, $parse:path) => {
        impl<'a> ::tokio_postgres::types::FromSql<'a> for $ty {
            fn from_sql(
                ty: &::tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> ::std::result::Result<Self, Box<dyn ::std::error::Error + Sync + Send>> {
                let text = <&str as ::tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                $parse(text).ok_or_else(|| format!("{text:?} is not a {}", stringify!($ty)).into())
            }

            fn accepts(ty: &::tokio_postgres::types::Type) -> bool {
                <&str as ::tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    };
}

pub use crate::text_enum_from_sql;

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

    #[derive(Debug, PartialEq)]
    enum Color {
        Red,
    }

    impl Color {
        fn parse(text: &str) -> Option<Color> {
            (text == "red").then_some(Color::Red)
        }
    }

    text_enum_from_sql!(Color, Color::parse);

    #[test]
    fn a_text_enum_reads_known_values_only() {
        use tokio_postgres::types::Type;
        assert!(<Color as FromSql>::accepts(&Type::TEXT));
        assert!(<Color as FromSql>::accepts(&Type::VARCHAR));
        assert!(!<Color as FromSql>::accepts(&Type::INT4));
        assert_eq!(Color::from_sql(&Type::TEXT, b"red").unwrap(), Color::Red);
        let unknown = Color::from_sql(&Type::TEXT, b"blue").unwrap_err();
        assert_eq!(unknown.to_string(), "\"blue\" is not a Color");
    }

    record! {
        #[derive(Debug)]
        struct Settled in "t" after Settled::settle {
            stored: String,
            shown: Option<String> = "NULL::text",
        }
    }

    impl Settled {
        fn settle(&mut self) {
            self.shown = Some(format!("settled {}", self.stored));
        }
    }

    record! {
        #[derive(Debug)]
        struct Stored in "j" {
            tags: Vec<String> as Json<Vec<String>>,
            note: Option<Vec<i32>> as Option<Json<Vec<i32>>> = "j.extra -> 'note'",
        }
    }

    #[test]
    fn a_field_read_as_json_is_decoded() {
        assert_eq!(Stored::COLUMNS, "j.tags, j.extra -> 'note' AS note");
        let tags: Vec<String> = Json(vec!["a".to_string()]).decode();
        let note: Option<Vec<i32>> = Some(Json(vec![1])).decode();
        let none: Option<Vec<i32>> = None::<Json<Vec<i32>>>.decode();
        assert_eq!(
            (tags, note, none),
            (vec!["a".to_string()], Some(vec![1]), None)
        );
        let read = |s: Stored| (s.tags, s.note);
        let _ = read;
    }

    #[test]
    fn a_hook_does_not_change_the_column_list() {
        assert_eq!(Settled::COLUMNS, "t.stored, NULL::text AS shown");
        assert_eq!(Settled::WIDTH, 2);
        let mut settled = Settled {
            stored: "online".into(),
            shown: None,
        };
        Settled::settle(&mut settled);
        assert_eq!(settled.shown.as_deref(), Some("settled online"));
    }
}
