//! Loading and initializing PKCS#11 modules. `C_Initialize` is process-global, so this is the
//! one process-wide registry in the crate: each module path is loaded and initialized once and
//! the `Pkcs11` context (an `Arc` inside) is shared. CKR_CRYPTOKI_ALREADY_INITIALIZED counts as
//! success (another component of the process initialized the library first).
//!
//! At a clean exit, [`finalize_all`] calls `C_Finalize` on each of them, so that the module
//! tears its state down while the process is intact, not in its static destructors racing
//! the exit handlers of OpenSSL and others (SoftHSMv2 issues #635, #729).
//!
//! It also holds the process-wide object-store lock for modules whose profile says
//! `serialize_object_store` (see [`object_store_lock`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use parking_lot::{Mutex, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use crate::Pkcs11Error;

fn registry() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// The initialized context of the module at `path`, loading it on first use.
pub fn load(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    let mut reg = registry().lock();
    if let Some(ctx) = reg.get(path) {
        return Ok(ctx.clone());
    }
    let err = |reason: String| Pkcs11Error::Module {
        path: path.display().to_string(),
        reason,
    };
    let ctx = Pkcs11::new(path).map_err(|e| err(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err(e.to_string())),
    }
    reg.insert(path.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// Finalizes (`C_Finalize`) every module loaded by [`load`], for a clean exit, and returns how
/// many were finalized. Call it last: after every component that used a module was dropped
/// (sessions closed, HSM threads joined). When a thread was left behind because it did not
/// finish in time ([`crate::threads::threads_left_behind`]), it may still be inside a
/// module call, so nothing is finalized (0) and the process exits as before. A module loaded
/// again afterwards is initialized again.
pub fn finalize_all() -> usize {
    if crate::threads::threads_left_behind() {
        tracing::warn!("PKCS#11 modules not finalized: a thread may still be using them");
        return 0;
    }
    let modules: Vec<(PathBuf, Pkcs11)> = registry().lock().drain().collect();
    let mut finalized = 0;
    for (path, ctx) in modules {
        match ctx.finalize() {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiNotInitialized, _)) => finalized += 1,
            Err(e) => {
                tracing::warn!(module = %path.display(), error = %e, "C_Finalize failed");
            }
        }
    }
    if finalized > 0 {
        tracing::info!(modules = finalized, "PKCS#11 modules finalized");
    }
    finalized
}

/// The end of a binary's clean stop: drops `owner` (the service or proxy state that holds the
/// tokens and HSM threads) if this is its last reference, then [`finalize_all`]. When something
/// still holds it, nothing is finalized and a warning says so. Call it after the async runtime
/// is dropped (its tasks hold references too).
pub fn finalize_after<T>(owner: Option<std::sync::Arc<T>>) {
    if let Some(owner) = owner {
        match std::sync::Arc::try_unwrap(owner) {
            Ok(owner) => drop(owner),
            Err(_) => {
                tracing::warn!("PKCS#11 modules not finalized: the service is still in use");
                return;
            }
        }
    }
    finalize_all();
}

/// The lock that token-object writes take exclusively and object searches take shared, for
/// modules whose object store is not safe for concurrent use (profile
/// `serialize_object_store`). One for the whole process: such a module's state is shared by
/// every component that loads it, whatever path it was loaded through (the test fault module
/// wraps SoftHSM). Writes are rare (key creation and deletion), so one lock costs nothing
/// on the request path.
pub fn object_store_lock() -> &'static RwLock<()> {
    static LOCK: RwLock<()> = RwLock::new(());
    &LOCK
}
