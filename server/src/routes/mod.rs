//! HTTP handlers, one module per resource. Handlers only extract, call a domain function and shape
//! the response.

pub mod admin;
pub mod auth;
pub mod files;
pub mod jobs;
pub mod openapi;
pub mod templates;
pub mod users;
