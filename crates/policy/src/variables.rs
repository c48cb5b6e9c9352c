//! Policy variables: `${aws:username}`, `${aws:PrincipalAccount}`, a default after a comma
//! (`${aws:username, 'nobody'}`), and the escapes `${*}`, `${?}`, `${$}` for a literal `*`,
//! `?` and `$`. Only documents with `"Version": "2012-10-17"` have variables; elsewhere `${`
//! is plain text.
//!
//! A value is compiled into a [`Template`]: static text/wildcards when it has no variables
//! (the common case, matched without allocating), or parts resolved per request otherwise.

use crate::context::{KeyRef, RequestContext};
use crate::glob::Token;

/// One piece of a value that contains variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// A literal character (wildcard characters that came from escapes included).
    Char(char),
    /// A wildcard (only in values whose operator globs).
    Wild(Token),
    /// A variable: the request's value of `key`, else `default`, else the value is unresolved.
    Var {
        key: KeyRef,
        default: Option<Box<str>>,
    },
}

/// A compiled policy value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Template {
    /// No variables: the tokens (characters, and wildcards when the operator globs).
    Static(Vec<Token>),
    /// At least one variable.
    Dynamic(Box<[Part]>),
}

/// Parses the inside of `${...}`: the key and an optional quoted default.
fn parse_variable(inner: &str) -> Option<Part> {
    let (name, default) = match inner.split_once(',') {
        Some((name, rest)) => {
            let rest = rest.trim();
            let quoted = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\''))?;
            (name.trim(), Some(quoted.into()))
        }
        None => (inner.trim(), None),
    };
    if name.is_empty() || !name.contains(':') || name.chars().any(char::is_whitespace) {
        return None;
    }
    Some(Part::Var {
        key: KeyRef::new(name),
        default,
    })
}

/// A `${...}` at the start of `text`: an escape or a variable, and the text after it.
fn variable_at(text: &str) -> Option<(Part, &str)> {
    let body = text.strip_prefix("${")?;
    let (inner, after) = body.split_once('}')?;
    let part = match inner {
        "*" => Part::Char('*'),
        "?" => Part::Char('?'),
        "$" => Part::Char('$'),
        _ => parse_variable(inner)?,
    };
    Some((part, after))
}

/// Compiles value text. `wildcards`: `*` and `?` outside `${}` are wildcards (Like operators,
/// ARN operators, `Resource`). `variables`: `${...}` is a variable (Version 2012-10-17, where
/// the policy kind allows them).
pub(crate) fn compile(text: &str, wildcards: bool, variables: bool) -> Template {
    let mut parts: Vec<Part> = Vec::with_capacity(text.len());
    let mut has_variable = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if variables {
            if let Some((part, after)) = variable_at(rest) {
                has_variable |= matches!(part, Part::Var { .. });
                parts.push(part);
                rest = after;
                continue;
            }
        }
        parts.push(match c {
            '*' if wildcards => Part::Wild(Token::Star),
            '?' if wildcards => Part::Wild(Token::One),
            c => Part::Char(c),
        });
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    if has_variable {
        return Template::Dynamic(parts.into());
    }
    Template::Static(
        parts
            .into_iter()
            .map(|p| match p {
                Part::Char(c) => Token::Char(c),
                Part::Wild(t) => t,
                // No variables were found above.
                Part::Var { .. } => Token::Star,
            })
            .collect(),
    )
}

/// Resolves a dynamic value for one request; `None` when a variable has no value and no
/// default (such a value matches nothing).
pub(crate) fn resolve(parts: &[Part], context: &RequestContext) -> Option<Vec<Token>> {
    let mut tokens = Vec::with_capacity(parts.len() + 16);
    for part in parts {
        match part {
            Part::Char(c) => tokens.push(Token::Char(*c)),
            Part::Wild(t) => tokens.push(*t),
            Part::Var { key, default } => {
                let value = context.variable(key);
                let text: &str = match (&value, default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => d,
                    (None, None) => return None,
                };
                // A substituted value is literal text, never a pattern.
                tokens.extend(text.chars().map(Token::Char));
            }
        }
    }
    Some(tokens)
}

/// The literal text of tokens (callers only use this where no wildcards can occur).
pub(crate) fn tokens_to_text(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|t| match t {
            Token::Char(c) => *c,
            Token::Star => '*',
            Token::One => '?',
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::context::Resource;
    use crate::principal::Caller;

    fn ctx() -> RequestContext {
        let alice = Caller::from_arn("arn:aws:iam::111122223333:user/alice").unwrap();
        RequestContext::new(alice, "kms:Decrypt", Resource::Any)
    }

    fn text(t: Template) -> String {
        match t {
            Template::Static(tokens) => tokens_to_text(&tokens),
            Template::Dynamic(parts) => tokens_to_text(&resolve(&parts, &ctx()).unwrap()),
        }
    }

    #[test]
    fn substitution_and_escapes() {
        assert_eq!(text(compile("${aws:username}", false, true)), "alice");
        assert_eq!(
            text(compile("u-${AWS:UserName}-x", false, true)),
            "u-alice-x"
        );
        assert_eq!(
            text(compile("${aws:PrincipalAccount}", false, true)),
            "111122223333"
        );
        assert_eq!(text(compile("a${*}b${?}c${$}", false, true)), "a*b?c$");
        assert_eq!(
            text(compile("${aws:userid, 'nobody'}", false, true)),
            "nobody"
        );
        // Without variables `${...}` is plain text.
        assert_eq!(
            text(compile("${aws:username}", false, false)),
            "${aws:username}"
        );
        // Malformed variables are plain text.
        assert_eq!(text(compile("${", false, true)), "${");
        assert_eq!(text(compile("${nocolon}", false, true)), "${nocolon}");
    }

    #[test]
    fn escaped_wildcards_stay_literal() {
        let Template::Static(tokens) = compile("a*${*}?${?}", true, true) else {
            panic!("no variables here");
        };
        assert_eq!(
            tokens,
            vec![
                Token::Char('a'),
                Token::Star,
                Token::Char('*'),
                Token::One,
                Token::Char('?')
            ]
        );
    }

    #[test]
    fn missing_variable_without_default_is_unresolved() {
        let Template::Dynamic(parts) = compile("${aws:userid}", false, true) else {
            panic!("a variable");
        };
        assert!(resolve(&parts, &ctx()).is_none());
    }
}
