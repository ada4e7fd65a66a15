//! Passwords: Argon2id hashes of the console's accounts and the registers,
//! and the one way they are checked.
//!
//! Argon2 is slow and memory-hard on purpose, which makes a burst of
//! sign-ins an attack on the server itself: every check runs here, under
//! one process-wide bound and in working memory kept for reuse, whoever
//! asks (the console, the register API).

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// A new Argon2id hash (default parameters, random salt) of `password`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))
}

/// Argon2 verifications running at once, in the whole process. Each holds
/// Argon2's memory (19 MiB with the default parameters) for tens of
/// milliseconds of one core's time; unbounded, a burst of a hundred
/// attempts took half a gigabyte. A request waits for a permit before its
/// hash work is started, so a waiting request holds only itself.
pub const HASHING_AT_ONCE: usize = 2;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_AT_ONCE);

/// Runs hash work once a [`HASHING`] permit is free, on a blocking thread
/// (Argon2 costs tens of milliseconds by design: off the async workers).
/// The permit goes with the work, so a request given up by its client
/// still holds it until its hashing is over. `None` if the work panicked.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    // The semaphore is never closed; were it, hashing without it beats
    // refusing every sign-in.
    let permit = HASHING.acquire().await.ok();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .ok()
}

/// Argon2's working memory, kept between checks and reused. Allocated
/// afresh for every check (as `verify_password` does), it was freed into
/// the allocator's arena of whichever thread ran the check, and each of the
/// blocking pool's threads kept its own 19 MiB: a burst left the server
/// hundreds of megabytes larger even with [`HASHING`] bounding the checks
/// at once. At most [`HASHING_AT_ONCE`] are ever out of this list.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Whether `password` matches the PHC string `phc`: what Argon2's
/// `verify_password` computes (algorithm, version, parameters and salt
/// from the string, the outputs compared in constant time), in memory
/// from [`MEMORY`].
fn verify(password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(hash.algorithm),
        hash.version.map(Version::try_from).transpose(),
        Params::try_from(&hash),
    ) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut memory = MEMORY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_default();
    memory.resize(params.block_count(), Block::default());
    let mut out = vec![0u8; expected.len()];
    let done = Argon2::new(algorithm, version.unwrap_or_default(), params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..])
        .is_ok();
    MEMORY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(memory);
    done && bool::from(expected.as_bytes().ct_eq(&out))
}

/// A hash of a random password nobody has, with the parameters of every
/// stored hash: verified for an unknown account or register so that the
/// answer takes as long as a wrong password's.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default())
}

/// Makes the decoy now (off a request path), so the first unknown name is
/// not answered one hash slower than a wrong password.
pub fn warm() {
    std::thread::spawn(|| {
        decoy_hash();
    });
}

/// Whether `password` matches the stored hash `phc`; with no hash (an
/// unknown or disabled account) the decoy is checked the same way and the
/// answer is `false`. Bounded by [`HASHING`], in reused memory.
pub async fn check(password: SecretString, phc: Option<String>) -> bool {
    hashing(move || {
        let matches = verify(
            password.expose_secret().as_bytes(),
            phc.as_deref().unwrap_or_else(|| decoy_hash()),
        );
        matches && phc.is_some()
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn verify_agrees_with_argon2_for_any_parameters_and_reuses_its_memory() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
        let default = hash_password("right password").unwrap();
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let small = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 3, 2, Some(20)).unwrap(),
        )
        .hash_password(b"right password", &salt)
        .unwrap()
        .to_string();
        for phc in [&default, &small] {
            let parsed = PasswordHash::new(phc).unwrap();
            for pw in ["right password", "wrong password", ""] {
                assert_eq!(
                    verify(pw.as_bytes(), phc),
                    Argon2::default()
                        .verify_password(pw.as_bytes(), &parsed)
                        .is_ok(),
                    "{phc} {pw:?}"
                );
            }
        }
        assert!(verify(b"right password", &default));
        assert!(!verify(b"right password", "not a hash"));
        assert!(!verify(b"", ""));
        // The memory went back to the list for the next check.
        assert!(!MEMORY.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_never_runs_more_than_the_permits_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NOW: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                tokio::spawn(hashing(|| {
                    let n = NOW.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    NOW.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        // Other tests may hold a permit meanwhile: at most, not exactly.
        let most = MOST.load(Ordering::SeqCst);
        assert!((1..=HASHING_AT_ONCE).contains(&most), "{most} at once");
    }
}
