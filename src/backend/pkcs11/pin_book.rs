//! The crypto user's PIN on each member of a cluster, as far as the KMS knows it.
//!
//! Connect rotates the PIN of every member it reaches; a member that was unreachable keeps the
//! PIN it had. Over several connects (and restarts) members can therefore hold different PINs,
//! so the KMS keeps one per member and logs in to each with its own: never a guess, because
//! every wrong PIN counts towards locking the user out.
//!
//! Stored (encrypted, see `service::secrets`) as the custom key store's password: a secret of
//! at most 32 characters is a password the customer gave (CreateCustomKeyStore or
//! UpdateCustomKeyStore `KeyStorePassword`, 7-32 characters), valid on every member; anything
//! longer is a book in JSON.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Longest password a customer can give (`KeyStorePassword`).
const MAX_CUSTOMER_PASSWORD: usize = 32;

/// Per-member PINs, with the PIN of members not listed.
pub struct PinBook {
    default: SecretString,
    members: BTreeMap<String, SecretString>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    default: Zeroizing<String>,
    members: BTreeMap<String, Zeroizing<String>>,
}

/// The stored secret is neither a customer password nor a PIN book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedPinBook;

impl PinBook {
    /// Every member has `pin` (a customer-given password).
    pub fn uniform(pin: &SecretString) -> PinBook {
        PinBook {
            default: copy(pin),
            members: BTreeMap::new(),
        }
    }

    /// Reads what [`Self::to_secret`] wrote, or a customer password.
    pub fn from_secret(secret: &SecretString) -> Result<PinBook, MalformedPinBook> {
        let text = secret.expose_secret();
        if text.len() <= MAX_CUSTOMER_PASSWORD {
            return Ok(PinBook::uniform(secret));
        }
        let stored: Stored = serde_json::from_str(text).map_err(|_| MalformedPinBook)?;
        Ok(PinBook {
            default: SecretString::from(stored.default.as_str()),
            members: stored
                .members
                .iter()
                .map(|(m, p)| (m.clone(), SecretString::from(p.as_str())))
                .collect(),
        })
    }

    /// The book as one secret to store (always longer than a customer password).
    pub fn to_secret(&self) -> SecretString {
        let stored = Stored {
            default: Zeroizing::new(self.default.expose_secret().to_string()),
            members: self
                .members
                .iter()
                .map(|(m, p)| (m.clone(), Zeroizing::new(p.expose_secret().to_string())))
                .collect(),
        };
        // Serializing strings into a String cannot fail; the fallback keeps the default PIN.
        let text = Zeroizing::new(serde_json::to_string(&stored).unwrap_or_default());
        SecretString::from(text.as_str())
    }

    /// The PIN `member` has.
    pub fn pin(&self, member: &str) -> &SecretString {
        self.members.get(member).unwrap_or(&self.default)
    }

    /// Records that `member` now has `pin`.
    pub fn set(&mut self, member: &str, pin: &SecretString) {
        self.members.insert(member.to_string(), copy(pin));
    }
}

impl Clone for PinBook {
    fn clone(&self) -> Self {
        PinBook {
            default: copy(&self.default),
            members: self
                .members
                .iter()
                .map(|(m, p)| (m.clone(), copy(p)))
                .collect(),
        }
    }
}

impl std::fmt::Debug for PinBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinBook")
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn copy(s: &SecretString) -> SecretString {
    SecretString::from(s.expose_secret())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(x: &str) -> SecretString {
        SecretString::from(x)
    }

    #[test]
    fn a_customer_password_is_every_members_pin() {
        let book = PinBook::from_secret(&s("Passw0rd")).unwrap();
        assert_eq!(book.pin("hsm-a").expose_secret(), "Passw0rd");
        assert_eq!(book.pin("anything").expose_secret(), "Passw0rd");
        // 32 characters is still a password.
        let long = "A".repeat(32);
        let book = PinBook::from_secret(&s(&long)).unwrap();
        assert_eq!(book.pin("x").expose_secret(), long);
    }

    #[test]
    fn round_trip_keeps_each_members_pin() {
        let mut book = PinBook::uniform(&s("original"));
        book.set("hsm-a", &s("rotated-a"));
        book.set("hsm-b", &s("rotated-b\"quote"));
        let secret = book.to_secret();
        assert!(secret.expose_secret().len() > MAX_CUSTOMER_PASSWORD);
        let back = PinBook::from_secret(&secret).unwrap();
        assert_eq!(back.pin("hsm-a").expose_secret(), "rotated-a");
        assert_eq!(back.pin("hsm-b").expose_secret(), "rotated-b\"quote");
        assert_eq!(back.pin("hsm-c").expose_secret(), "original");
        // Even a book without entries is longer than any customer password.
        let empty = PinBook::uniform(&s("1234567")).to_secret();
        assert!(empty.expose_secret().len() > MAX_CUSTOMER_PASSWORD);
        assert_eq!(
            PinBook::from_secret(&empty)
                .unwrap()
                .pin("m")
                .expose_secret(),
            "1234567"
        );
    }

    #[test]
    fn garbage_is_refused_and_debug_shows_no_pin() {
        assert_eq!(
            PinBook::from_secret(&s(&"x".repeat(40))).unwrap_err(),
            MalformedPinBook
        );
        let mut book = PinBook::uniform(&s("secret-default"));
        book.set("hsm-a", &s("secret-a"));
        let shown = format!("{book:?}");
        assert!(
            shown.contains("hsm-a") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
