//! PROVISIONAL (replaced by the store's record module on merge).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDeadLetter {
    pub actor: String,
    pub msg: String,
    pub payload: serde_json::Value,
    pub error: String,
    pub correlation_id: String,
    pub retries: u32,
}
