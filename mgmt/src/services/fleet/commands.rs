//! Remote fleet commands at mgmt (mgmt migration 6): stored when asked,
//! published to the device (again on reconnect and periodically until a
//! result comes), results kept with the command.

use serde::Serialize;

/// A command as the admin sees it (output left out of lists).
#[derive(Debug, Clone, Serialize)]
pub struct CommandView {
    pub id: String,
    pub device: String,
    pub kind: String,
    pub command: serde_json::Value,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
    pub result_ms: Option<i64>,
    pub ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub output_bytes: i64,
}
