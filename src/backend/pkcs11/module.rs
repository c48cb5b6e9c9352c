//! Loading and initializing PKCS#11 modules. `C_Initialize` is process-global, so this is the
//! one process-wide registry in the crate: each module path is loaded and initialized once and
//! the `Pkcs11` context (an `Arc` inside) is shared. CKR_CRYPTOKI_ALREADY_INITIALIZED counts as
//! success (another component of the process initialized the library first).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use super::Pkcs11Error;

fn registry() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// The initialized context of the module at `path`, loading it on first use.
pub fn load(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
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
