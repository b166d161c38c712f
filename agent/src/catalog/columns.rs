//! Reading the API's typed values out of catalog columns, which hold them as
//! text (times as RFC 3339, closed sets by their wire names): a column that
//! does not parse is a corrupt row, reported, never read as a default.

use std::str::FromStr;

use rusqlite::Row;
use rusqlite::types::{FromSqlError, Type};

/// The column `i` parsed with `FromStr` (times, ids kept as text).
pub(super) fn parsed<T>(r: &Row<'_>, i: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = r.get(i)?;
    text.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

/// Like [`parsed`], for a column that may be NULL.
pub(super) fn parsed_opt<T>(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match r.get::<_, Option<String>>(i)? {
        None => Ok(None),
        Some(text) => {
            text.parse().map(Some).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
        }
    }
}

/// The column `i` as one of a closed set, by its wire name (`parse` is the
/// set's own, e.g. `Structure::parse`).
pub(super) fn named<T>(r: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    parse(&text).ok_or_else(|| {
        let shown: String = text.chars().take(40).collect();
        rusqlite::Error::FromSqlConversionFailure(
            i,
            Type::Text,
            Box::new(FromSqlError::Other(format!("unknown value {shown:?}").into())),
        )
    })
}
