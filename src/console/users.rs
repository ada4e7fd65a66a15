//! Console accounts and sessions: the `console_users` and
//! `console_sessions` tables, and what a role may see.
//!
//! A session token is 32 random bytes given to the browser once; only its
//! SHA-256 is stored, so a copy of the database does not sign anyone in.

use sha2::{Digest, Sha256};

use crate::core::store::{Db, StoreError};

/// What a signed-in person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users, relay and loyalty.
    Admin,
    /// Their restaurants: sees their data, changes their SMS settings.
    Manager,
    /// Their restaurants, read-only.
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Viewer => "viewer",
        }
    }
}

/// A console account (without its password hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Restaurant codes a manager or viewer is assigned; ignored for admin.
    pub restaurants: Vec<String>,
}

impl User {
    /// Whether this person may see data of restaurant `rest` (`None`: data
    /// that belongs to no restaurant, which only an admin sees).
    pub fn may_see(&self, rest: Option<&str>) -> bool {
        match (self.role, rest) {
            (Role::Admin, _) => true,
            (_, Some(r)) => self.restaurants.iter().any(|a| a == r),
            (_, None) => false,
        }
    }

    /// Whether this person may change settings of restaurant `rest`.
    pub fn may_change(&self, rest: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => self.may_see(Some(rest)),
            Role::Viewer => false,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    name: String,
    password_hash: String,
    role: String,
    restaurants: String,
}

impl UserRow {
    fn user(self) -> Result<(User, String), StoreError> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| StoreError::Corrupt(format!("console user role {:?}", self.role)))?;
        Ok((
            User {
                name: self.name,
                role,
                restaurants: split_restaurants(&self.restaurants),
            },
            self.password_hash,
        ))
    }
}

fn split_restaurants(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks a new account's name, role and restaurants; the message is
/// shown as it is by the CLI and the Users page.
pub fn check_new(name: &str, role: &str, restaurants: &[String]) -> Result<Role, String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        return Err("user name: 1 to 64 Latin letters, digits or . _ - @".into());
    }
    let role = Role::parse(role).ok_or("role must be admin, manager or viewer")?;
    for r in restaurants {
        if r.is_empty() || r.len() > 32 || !r.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "restaurant {r:?}: a RestCode is 1 to 32 letters or digits"
            ));
        }
    }
    if role != Role::Admin && restaurants.is_empty() {
        return Err("a manager or viewer needs at least one restaurant".into());
    }
    Ok(role)
}

/// The shortest password an account may have.
pub const MIN_PASSWORD: usize = 10;

pub async fn add(
    db: &Db,
    user: &User,
    password_hash: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "INSERT INTO console_users (name, password_hash, role, restaurants, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&user.name)
    .bind(password_hash)
    .bind(user.role.as_str())
    .bind(user.restaurants.join(","))
    .bind(now_ms)
    .execute(&db.write)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The account and its stored hash.
pub async fn find(db: &Db, name: &str) -> Result<Option<(User, String)>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT name, password_hash, role, restaurants FROM console_users WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&db.read)
    .await?;
    row.map(UserRow::user).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<User>, StoreError> {
    let rows: Vec<UserRow> = sqlx::query_as(
        "SELECT name, password_hash, role, restaurants FROM console_users ORDER BY name",
    )
    .fetch_all(&db.read)
    .await?;
    rows.into_iter().map(|r| r.user().map(|(u, _)| u)).collect()
}

/// Removes an account and signs it out everywhere.
pub async fn remove(db: &Db, name: &str) -> Result<bool, StoreError> {
    let mut tx = db.write.begin().await?;
    sqlx::query("DELETE FROM console_sessions WHERE user_name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let r = sqlx::query("DELETE FROM console_users WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

pub async fn count_admins(db: &Db) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM console_users WHERE role = 'admin'")
            .fetch_one(&db.read)
            .await?,
    )
}

fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signed-in browser: who, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf: String,
}

/// Starts a session for `name`; returns the token for the cookie.
pub async fn open_session(
    db: &Db,
    name: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<String, StoreError> {
    let token = random_token();
    sqlx::query(
        "INSERT INTO console_sessions (token_hash, user_name, csrf, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(name)
    .bind(random_token())
    .bind(now_ms)
    .bind(now_ms + ttl_ms)
    .execute(&db.write)
    .await?;
    // Expired sessions of anyone are cleared at each sign-in: no worker.
    sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
        .bind(now_ms)
        .execute(&db.write)
        .await?;
    Ok(token)
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    user_name: String,
    csrf: String,
    expires_at: i64,
}

/// The live session of `token`, if any.
pub async fn session(db: &Db, token: &str, now_ms: i64) -> Result<Option<Session>, StoreError> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT user_name, csrf, expires_at FROM console_sessions WHERE token_hash = $1",
    )
    .bind(token_hash(token))
    .fetch_optional(&db.read)
    .await?;
    let Some(row) = row.filter(|r| r.expires_at > now_ms) else {
        return Ok(None);
    };
    Ok(find(db, &row.user_name).await?.map(|(user, _)| Session {
        user,
        csrf: row.csrf,
    }))
}

pub async fn close_session(db: &Db, token: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(&db.write)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, rests: &[&str]) -> User {
        User {
            name: "u".into(),
            role,
            restaurants: rests.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn roles_see_and_change_only_what_they_may() {
        let admin = user(Role::Admin, &[]);
        let manager = user(Role::Manager, &["101"]);
        let viewer = user(Role::Viewer, &["101"]);
        assert!(admin.may_see(Some("999")) && admin.may_see(None) && admin.may_change("999"));
        assert!(manager.may_see(Some("101")) && manager.may_change("101"));
        assert!(!manager.may_see(Some("102")) && !manager.may_change("102"));
        assert!(!manager.may_see(None));
        assert!(viewer.may_see(Some("101")) && !viewer.may_change("101"));
    }

    #[test]
    fn new_accounts_are_checked() {
        assert!(check_new("anna", "admin", &[]).is_ok());
        assert!(check_new("an na", "admin", &[]).is_err());
        assert!(check_new("", "admin", &[]).is_err());
        assert!(check_new("anna", "owner", &[]).is_err());
        assert!(check_new("anna", "manager", &[]).is_err());
        assert!(check_new("anna", "manager", &["10 1".into()]).is_err());
        assert_eq!(
            check_new("anna", "viewer", &["101".into()]),
            Ok(Role::Viewer)
        );
    }
}
