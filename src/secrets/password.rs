//! Passwords: argon2id. A hash costs tens of milliseconds of CPU and 19 MiB of memory by
//! design, so it runs on a fixed pool of long-lived threads, one per core, never on an HTTP
//! worker: a burst of logins queues instead of each taking 19 MiB at once. (Measured under
//! 16 concurrent logins: 2.7 GB RSS on the shared blocking pool, 771 MB with a concurrency
//! bound, far less with this pool; see the notes.)

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use tokio::sync::oneshot;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

pub const MIN_LEN: usize = 6;
/// Long inputs only cost hashing time; nobody types more than this.
pub const MAX_LEN: usize = 256;

/// Makes the 19 MiB hash buffers come from their own mappings, given back to the system
/// when each hash ends. glibc otherwise raises its mmap threshold after the first free and
/// serves later buffers from the heap, whose freed space it keeps: a server that had logged
/// 200 users in sat at ~290 MB instead of ~20 MB. Call once, before threads start.
pub fn return_hash_memory_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn hasher() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &str) -> Result<String, String> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// False for a wrong password and for a hash that does not parse.
pub fn verify(password: &str, stored: &str) -> bool {
    hasher()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// Verifying against this when the user does not exist makes "unknown user" take as long
/// as "wrong password", so timing does not reveal which usernames exist.
fn verify_against_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not-a-real-password").unwrap_or_default());
    let _ = verify(password, dummy);
}

type Job = Box<dyn FnOnce() + Send>;

fn pool() -> &'static Mutex<mpsc::Sender<Job>> {
    static POOL: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || loop {
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .expect("spawn a password thread");
        }
        Mutex::new(tx)
    })
}

/// Runs `work` on the password threads.
async fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (done, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(work());
    });
    pool()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(job)
        .map_err(|_| "password threads are gone".to_string())?;
    result
        .await
        .map_err(|_| "password job was dropped".to_string())
}

pub async fn hash_async(password: String) -> Result<String, String> {
    bounded(move || hash(&password)).await?
}

/// Verifies against the stored hash, or against a dummy when there is none (unknown user),
/// so that both take the same time.
pub async fn verify_async(password: String, stored: Option<String>) -> Result<bool, String> {
    bounded(move || match stored {
        Some(stored) => verify(&password, &stored),
        None => {
            verify_against_dummy(&password);
            false
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse", &a));
        assert!(!verify("correct horsf", &a));
        assert!(!verify("correct horse", "not a hash"));
    }
}
