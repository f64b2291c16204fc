//! The reference's limit/offset pages: `{items, total, limit, offset}`.

use serde::Serialize;
use utoipa::ToSchema;

pub const DEFAULT_LIMIT: i64 = 200;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageParams {
    pub limit: i64,
    pub offset: i64,
}

impl Default for PageParams {
    fn default() -> Self {
        PageParams {
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl PageParams {
    pub fn page<T>(self, items: Vec<T>, total: i64) -> Page<T> {
        Page {
            items,
            total,
            limit: self.limit,
            offset: self.offset,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// One page of `SELECT {columns} {from_where} ORDER BY {order}` with the total count of
/// `from_where`, in one statement: the total rides on every row as a window count over the
/// rows before LIMIT (the sort reads them all anyway). Only a page past the end (no row to
/// carry it) asks for the count apart. `from_where` uses `$1..$n` for `params`; the limit
/// and offset are bound after them. `map` reads a row (a record's `from_row`; the extra
/// `page_total` column is not read by it).
pub async fn fetch_page<T>(
    client: &impl crate::db::GenericClient,
    columns: &str,
    from_where: &str,
    order: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    page: PageParams,
    map: impl Fn(&tokio_postgres::Row) -> Result<T, crate::db::record::RowError>,
) -> crate::domain::DomainResult<Page<T>> {
    let n = params.len();
    let sql = format!(
        "SELECT {columns}, count(*) OVER () AS page_total {from_where} \
         ORDER BY {order} LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
    all.push(&page.limit);
    all.push(&page.offset);
    let rows = client.query(&sql, &all).await?;
    let total: i64 = match rows.first() {
        Some(row) => crate::db::record::get(row, "page_total")?,
        None if page.offset == 0 => 0,
        None => {
            let count = format!("SELECT count(*) AS total {from_where}");
            let row = client.query_one(&count, params).await?;
            crate::db::record::get(&row, "total")?
        }
    };
    let items = rows.iter().map(map).collect::<Result<_, _>>()?;
    Ok(page.page(items, total))
}
