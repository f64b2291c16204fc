//! `Option<Option<T>>` for PATCH bodies: absent = leave as is, `null` = clear.

use serde::{Deserialize, Deserializer};

pub fn field<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
