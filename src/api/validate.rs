//! Request validation with AWS's wording:
//! `1 validation error detected: Value '5' at 'pendingWindowInDays' failed to satisfy
//! constraint: Member must have value greater than or equal to 7`.

use crate::service::{KmsError, KmsResult};

/// Collects constraint violations of one request.
#[derive(Default)]
pub struct Checks {
    errors: Vec<String>,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(&mut self, value: Option<&str>, field: &str, constraint: &str) {
        let v = match value {
            Some(v) => format!("Value '{v}' at"),
            None => "Value at".to_string(),
        };
        self.errors.push(format!(
            "{v} '{field}' failed to satisfy constraint: Member must {constraint}"
        ));
    }

    /// A violated constraint AWS words in its own way (`constraint` follows "Member must").
    pub fn violation(&mut self, field: &str, value: Option<&str>, constraint: &str) -> &mut Self {
        self.fail(value, field, constraint);
        self
    }

    /// Number of members of a list or map (the members are not echoed).
    pub fn count(&mut self, field: &str, n: usize, min: usize, max: usize) -> &mut Self {
        if n < min {
            self.fail(
                None,
                field,
                &format!("have length greater than or equal to {min}"),
            );
        } else if n > max {
            self.fail(
                None,
                field,
                &format!("have length less than or equal to {max}"),
            );
        }
        self
    }

    /// A list of strings: its length, then its members' lengths. AWS names the list and echoes
    /// it (`Value '[a, b]' at 'tagKeys'`); a bad member is reported with every constraint of the
    /// member shape (`Member must satisfy constraint: [Member must have length less than or
    /// equal to 128, Member must have length greater than or equal to 1]`).
    pub fn string_list(
        &mut self,
        field: &str,
        v: Option<&[String]>,
        (min_len, max_len): (usize, usize),
        (member_min, member_max): (usize, usize),
    ) -> &mut Self {
        let Some(list) = v else {
            return self;
        };
        let shown = format!("[{}]", list.join(", "));
        if list.len() < min_len {
            self.fail(
                Some(&shown),
                field,
                &format!("have length greater than or equal to {min_len}"),
            );
        } else if list.len() > max_len {
            self.fail(
                Some(&shown),
                field,
                &format!("have length less than or equal to {max_len}"),
            );
        }
        if list.iter().any(|m| {
            let n = m.chars().count();
            n < member_min || n > member_max
        }) {
            self.fail(
                Some(&shown),
                field,
                &format!(
                    "satisfy constraint: [Member must have length less than or equal to \
                     {member_max}, Member must have length greater than or equal to {member_min}]"
                ),
            );
        }
        self
    }

    /// A required member is missing.
    pub fn required<T>(&mut self, field: &str, v: &Option<T>) -> &mut Self {
        if v.is_none() {
            self.errors.push(format!(
                "Value null at '{field}' failed to satisfy constraint: Member must not be null"
            ));
        }
        self
    }

    /// String length in characters.
    pub fn len(&mut self, field: &str, v: Option<&str>, min: usize, max: usize) -> &mut Self {
        if let Some(s) = v {
            let n = s.chars().count();
            if n < min {
                self.fail(
                    Some(s),
                    field,
                    &format!("have length greater than or equal to {min}"),
                );
            } else if n > max {
                self.fail(
                    Some(s),
                    field,
                    &format!("have length less than or equal to {max}"),
                );
            }
        }
        self
    }

    /// Blob length in bytes (the value is never echoed).
    pub fn blob_len(&mut self, field: &str, v: Option<&[u8]>, min: usize, max: usize) -> &mut Self {
        if let Some(b) = v {
            if b.len() < min {
                self.fail(
                    None,
                    field,
                    &format!("have length greater than or equal to {min}"),
                );
            } else if b.len() > max {
                self.fail(
                    None,
                    field,
                    &format!("have length less than or equal to {max}"),
                );
            }
        }
        self
    }

    /// Integer range.
    pub fn range(&mut self, field: &str, v: Option<i64>, min: i64, max: i64) -> &mut Self {
        if let Some(n) = v {
            let s = n.to_string();
            if n < min {
                self.fail(
                    Some(&s),
                    field,
                    &format!("have value greater than or equal to {min}"),
                );
            } else if n > max {
                self.fail(
                    Some(&s),
                    field,
                    &format!("have value less than or equal to {max}"),
                );
            }
        }
        self
    }

    /// Regular-expression-like pattern, given as a predicate and the pattern text to print.
    pub fn pattern(
        &mut self,
        field: &str,
        v: Option<&str>,
        ok: impl Fn(&str) -> bool,
        pattern: &str,
    ) -> &mut Self {
        if let Some(s) = v {
            if !ok(s) {
                self.fail(
                    Some(s),
                    field,
                    &format!("satisfy regular expression pattern: {pattern}"),
                );
            }
        }
        self
    }

    /// Any other constraint, worded `Member must <constraint>` (`value` echoed when given).
    pub fn constraint(&mut self, field: &str, value: Option<&str>, constraint: &str) -> &mut Self {
        self.fail(value, field, constraint);
        self
    }

    /// Enum membership; returns the parsed value when valid.
    pub fn enum_value<E>(
        &mut self,
        field: &str,
        v: Option<&str>,
        parse: impl Fn(&str) -> Option<E>,
        all: &str,
    ) -> Option<E> {
        let s = v?;
        match parse(s) {
            Some(e) => Some(e),
            None => {
                self.fail(Some(s), field, &format!("satisfy enum value set: {all}"));
                None
            }
        }
    }

    /// The ValidationException for everything collected, if anything.
    pub fn finish(&mut self) -> KmsResult<()> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(KmsError::Validation(format!(
                "1 validation error detected: {}",
                self.errors[0]
            ))),
            n => Err(KmsError::Validation(format!(
                "{n} validation errors detected: {}",
                self.errors.join("; ")
            ))),
        }
    }
}

/// Printable characters allowed in key policies and descriptions: tab, LF, CR, printable ASCII
/// and printable Latin-1 Supplement.
pub fn is_policy_text(s: &str) -> bool {
    s.chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{a1}'..='\u{ff}'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn aws_wording() {
        let e = Checks::new()
            .range("pendingWindowInDays", Some(5), 7, 30)
            .finish()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "1 validation error detected: Value '5' at 'pendingWindowInDays' failed to satisfy \
             constraint: Member must have value greater than or equal to 7"
        );
        let e = Checks::new()
            .required::<String>("keyId", &None)
            .blob_len("plaintext", Some(&[0u8; 4097]), 1, 4096)
            .finish()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 validation errors detected: Value null at 'keyId' failed to satisfy constraint: \
             Member must not be null; Value at 'plaintext' failed to satisfy constraint: Member \
             must have length less than or equal to 4096"
        );
        let keys = vec!["a".to_string(), String::new()];
        let e = Checks::new()
            .string_list("tagKeys", Some(&keys), (0, 1), (1, 128))
            .finish()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 validation errors detected: Value '[a, ]' at 'tagKeys' failed to satisfy \
             constraint: Member must have length less than or equal to 1; Value '[a, ]' at \
             'tagKeys' failed to satisfy constraint: Member must satisfy constraint: [Member \
             must have length less than or equal to 128, Member must have length greater than \
             or equal to 1]"
        );
    }
}
