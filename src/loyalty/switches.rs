//! TEMPORARY stand-in until h-bo-cards is merged (not committed).
use crate::core::store::Db;
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResyncGuard {
    pub stores_with_cards_on: Vec<String>,
    pub queued: Vec<QueuedRegister>,
}
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueuedRegister {
    pub register_id: String,
    pub store: String,
    pub depth: i64,
    pub seen_at: i64,
}
pub async fn resync_guard(
    _db: &Db,
    _stores: Option<&[String]>,
) -> Result<ResyncGuard, sqlx::Error> {
    Ok(ResyncGuard {
        stores_with_cards_on: vec![],
        queued: vec![],
    })
}
