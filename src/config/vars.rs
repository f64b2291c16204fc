//! Typed reads of raw settings with errors that name the variable and say what is expected.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::spec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub name: &'static str,
    pub problem: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.problem)
    }
}

/// Raw values keyed by upper-case name, with collected errors so that start-up can report
/// every bad setting at once instead of one per attempt.
pub struct Vars {
    values: HashMap<String, String>,
    pub errors: Vec<SettingError>,
}

impl Vars {
    pub fn new(values: HashMap<String, String>) -> Self {
        let values = values
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        Vars {
            values,
            errors: Vec::new(),
        }
    }

    pub fn fail(&mut self, name: &'static str, problem: impl Into<String>) {
        self.errors.push(SettingError {
            name,
            problem: problem.into(),
        });
    }

    /// The trimmed value, or `None` when unset or blank (blank means "use the default"
    /// in an env file, as it did for the reference server).
    pub fn optional(&self, name: &'static str) -> Option<String> {
        spec::find(name);
        self.values
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&mut self, name: &'static str, expected: &str) -> Option<String> {
        let value = self.optional(name);
        if value.is_none() {
            self.fail(name, format!("is required: expected {expected}"));
        }
        value
    }

    /// The value, or the documented default.
    pub fn string(&self, name: &'static str) -> String {
        self.optional(name)
            .or_else(|| spec::find(name).default.map(str::to_string))
            .unwrap_or_default()
    }

    /// Parses the value (or the documented default) as `T`; on failure records an error
    /// and returns `fallback` so the rest of the settings can still be checked.
    pub fn parse<T: FromStr>(&mut self, name: &'static str, expected: &str, fallback: T) -> T {
        let raw = self.string(name);
        match raw.parse::<T>() {
            Ok(v) => v,
            Err(_) => {
                self.fail(name, format!("expected {expected}, got {raw:?}"));
                fallback
            }
        }
    }

    pub fn number(&mut self, name: &'static str, min: u64, max: u64) -> u64 {
        let expected = format!("a whole number from {min} to {max}");
        let value = self.parse::<u64>(name, &expected, min);
        if !(min..=max).contains(&value) {
            self.fail(name, format!("expected {expected}, got {value}"));
            return min;
        }
        value
    }

    pub fn flag(&mut self, name: &'static str) -> bool {
        let raw = self.string(name).to_ascii_lowercase();
        match raw.as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.fail(name, format!("expected true or false, got {raw:?}"));
                false
            }
        }
    }
}
