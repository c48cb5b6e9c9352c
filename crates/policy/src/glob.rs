//! Wildcard patterns (`*` = any run of characters, `?` = exactly one character) and the
//! case-folding helpers used by actions, ARNs and string conditions.
//!
//! Patterns are compiled once into the cheapest form that answers them (anything, exact, prefix,
//! general); matching never allocates.

/// One element of a wildcard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// A literal character (including a `*` or `?` that came from `${*}` / `${?}`).
    Char(char),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Turns pattern text into tokens: `*` and `?` are wildcards, everything else literal.
pub(crate) fn tokenize(pattern: &str) -> Vec<Token> {
    pattern
        .chars()
        .map(|c| match c {
            '*' => Token::Star,
            '?' => Token::One,
            c => Token::Char(c),
        })
        .collect()
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Glob {
    /// Only stars: matches every string.
    Anything,
    /// No wildcards.
    Exact(Box<str>),
    /// Literal text then one trailing star (`kms:Get*`).
    Prefix(Box<str>),
    /// Anything else.
    General(Box<[Token]>),
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Glob {
        Glob::from_tokens(tokenize(pattern))
    }

    pub(crate) fn from_tokens(mut tokens: Vec<Token>) -> Glob {
        tokens.dedup_by(|a, b| *a == Token::Star && *b == Token::Star);
        if tokens.iter().all(|t| *t == Token::Star) && !tokens.is_empty() {
            return Glob::Anything;
        }
        let literal = |ts: &[Token]| -> Option<String> {
            ts.iter()
                .map(|t| match t {
                    Token::Char(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        if let Some(text) = literal(&tokens) {
            return Glob::Exact(text.into());
        }
        if let Some((Token::Star, head)) = tokens.split_last() {
            if let Some(text) = literal(head) {
                return Glob::Prefix(text.into());
            }
        }
        Glob::General(tokens.into())
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Glob::Anything => true,
            Glob::Exact(s) => **s == *text,
            Glob::Prefix(p) => text.starts_with(&**p),
            Glob::General(tokens) => wildcard_match(tokens, text),
        }
    }
}

/// Length in bytes of the character that starts at byte `i` of `text` (`i` < `text.len()`).
fn char_len_at(text: &str, i: usize) -> usize {
    text.get(i..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8)
}

/// Matches `text` against `tokens` with backtracking to the most recent star (linear in the
/// common case, O(pattern x text) at worst). Never allocates.
pub(crate) fn wildcard_match(tokens: &[Token], text: &str) -> bool {
    let len = text.len();
    let (mut p, mut i) = (0usize, 0usize);
    // (pattern index after the star, text index the star's run currently ends at)
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if let Some(token) = tokens.get(p) {
            match *token {
                Token::Star => {
                    p += 1;
                    backtrack = Some((p, i));
                    continue;
                }
                Token::One if i < len => {
                    i += char_len_at(text, i);
                    p += 1;
                    continue;
                }
                Token::Char(c) if text.get(i..).is_some_and(|rest| rest.starts_with(c)) => {
                    i += c.len_utf8();
                    p += 1;
                    continue;
                }
                _ => {}
            }
        } else if i == len {
            return true;
        }
        match backtrack {
            Some((after_star, run_end)) if run_end < len => {
                let next = run_end + char_len_at(text, run_end);
                backtrack = Some((after_star, next));
                p = after_star;
                i = next;
            }
            _ => return false,
        }
    }
}

/// Lowercases character by character (no context-dependent rules such as final sigma), so
/// that [`eq_ignore_case`] agrees with it exactly.
pub(crate) fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars().flat_map(char::to_lowercase).collect()
}

/// `fold(text) == folded`, without allocating.
pub(crate) fn eq_folded(text: &str, folded: &str) -> bool {
    if text.is_ascii() && folded.is_ascii() {
        return text.len() == folded.len()
            && text
                .bytes()
                .zip(folded.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b);
    }
    text.chars().flat_map(char::to_lowercase).eq(folded.chars())
}

/// Case-insensitive equality of two strings (both folded the same way).
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        let general = wildcard_match(&tokenize(p), t);
        assert_eq!(
            general,
            Glob::new(p).matches(t),
            "compiled form of {p:?} vs {t:?}"
        );
        general
    }

    #[test]
    fn wildcards() {
        let table = [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a", "a", true),
            ("a", "A", false),
            ("?", "", false),
            ("?", "é", true),
            ("??", "é", false),
            ("a*", "abc", true),
            ("a*", "ba", false),
            ("*c", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abcb", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", true),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("kms:get*", "kms:getpublickey", true),
            ("kms:re?ncrypt*", "kms:reencryptfrom", true),
            ("al?ce", "alïce", true),
            ("**", "x", true),
            ("*?", "", false),
            ("*?", "x", true),
        ];
        for (p, t, want) in table {
            assert_eq!(m(p, t), want, "pattern {p:?} text {t:?}");
        }
    }

    #[test]
    fn escaped_wildcards_are_literal() {
        let tokens = vec![Token::Char('a'), Token::Char('*')];
        assert!(wildcard_match(&tokens, "a*"));
        assert!(!wildcard_match(&tokens, "ab"));
        assert_eq!(Glob::from_tokens(tokens), Glob::Exact("a*".into()));
    }

    #[test]
    fn folding() {
        assert_eq!(fold("AppName"), "appname");
        assert!(eq_folded("APPname", "appname"));
        assert!(eq_folded("ÄPP", &fold("äpp")));
        assert!(!eq_folded("app", "apq"));
        assert!(eq_ignore_case("Ünïcode", "üNÏCODE"));
        assert!(!eq_ignore_case("a", "ab"));
    }
}
