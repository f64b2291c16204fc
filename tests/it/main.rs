//! Black-box tests: the real binary, real PostgreSQL, real Redis.

mod harness;

mod admin_auth;
mod bridge;
mod health;
mod http_basics;
mod startup;
mod tags;
