//! Resource tags on keys: upsert, remove, list (AWS tag rules and limits).

use super::{part, Call, KmsError, KmsResult, StateRule};
use crate::model::Tag;

/// Tags per key (AWS quota).
pub const MAX_TAGS_PER_KEY: usize = 50;

part!(
    /// TagResource, UntagResource, ListResourceTags.
    Tags
);

impl Tags {
    pub async fn tag_resource(
        &self,
        call: &mut Call,
        key_id: &str,
        tags: Vec<Tag>,
    ) -> KmsResult<()> {
        let key = self.resolve(call, key_id, false).await?;
        self.authorize_key(call, "TagResource", &key, None, |ctx| {
            for t in &tags {
                ctx.set(&format!("aws:RequestTag/{}", t.key), t.value.as_str());
            }
            ctx.set_multi(
                "aws:TagKeys",
                super::authz::strings(tags.iter().map(|t| t.key.as_str())),
            );
        })
        .await?;
        self.check_state(&key, StateRule::NotPendingDeletion)?;
        check_tags(&tags)?;
        let existing = self.store.list_tags(&key.key_id).await?;
        let new_keys = tags
            .iter()
            .filter(|t| !existing.iter().any(|e| e.key == t.key))
            .count();
        if existing.len() + new_keys > MAX_TAGS_PER_KEY {
            return Err(KmsError::LimitExceeded(format!(
                "The request was rejected because {} would have more than {MAX_TAGS_PER_KEY} tags.",
                key.arn
            )));
        }
        self.store.put_tags(&key.key_id, &tags).await?;
        Ok(())
    }

    pub async fn untag_resource(
        &self,
        call: &mut Call,
        key_id: &str,
        tag_keys: Vec<String>,
    ) -> KmsResult<()> {
        let key = self.resolve(call, key_id, false).await?;
        self.authorize_key(call, "UntagResource", &key, None, |ctx| {
            ctx.set_multi(
                "aws:TagKeys",
                super::authz::strings(tag_keys.iter().map(String::as_str)),
            );
        })
        .await?;
        self.check_state(&key, StateRule::NotPendingDeletion)?;
        self.store.remove_tags(&key.key_id, &tag_keys).await?;
        Ok(())
    }

    /// One page of tags (ordered by tag key); returns the page and whether more follow.
    pub async fn list_resource_tags(
        &self,
        call: &mut Call,
        key_id: &str,
        marker: Option<&str>,
        limit: usize,
    ) -> KmsResult<(Vec<Tag>, bool)> {
        let key = self.resolve_authorized(call, key_id, false).await?;
        let all = self.store.list_tags(&key.key_id).await?;
        let start = match marker {
            None => 0,
            Some(m) => match all.iter().position(|t| t.key.as_str() > m) {
                Some(i) => i,
                None => all.len(),
            },
        };
        let page: Vec<Tag> = all[start..].iter().take(limit).cloned().collect();
        let truncated = all.len() > start + page.len();
        Ok((page, truncated))
    }
}

/// Tag rules enforced by KMS itself (lengths are checked by the API layer), in AWS's order and
/// words (recorded AWS responses, docs/errors.md): duplicate keys, then more than 50 tags in
/// one request, then a key beginning with `aws:` in any case.
pub fn check_tags(tags: &[Tag]) -> KmsResult<()> {
    if tags
        .iter()
        .enumerate()
        .any(|(i, t)| tags[..i].iter().any(|o| o.key == t.key))
    {
        return Err(KmsError::Tag("Duplicate tag keys".into()));
    }
    if tags.len() > MAX_TAGS_PER_KEY {
        return Err(KmsError::Tag("Too many tags".into()));
    }
    if tags.iter().any(|t| {
        t.key
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
    }) {
        return Err(KmsError::Tag(
            "Tags beginning with aws: are reserved".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str) -> Tag {
        Tag {
            key: key.into(),
            value: "v".into(),
        }
    }

    #[test]
    fn aws_order_and_words() {
        let msg = |tags: &[Tag]| match check_tags(tags) {
            Err(KmsError::Tag(m)) => m,
            other => format!("{other:?}"),
        };
        assert_eq!(msg(&[tag("a"), tag("a")]), "Duplicate tag keys");
        assert_eq!(
            msg(&[tag("AWS:x")]),
            "Tags beginning with aws: are reserved"
        );
        assert_eq!(
            msg(&[tag("Aws:x")]),
            "Tags beginning with aws: are reserved"
        );
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("aws:{i}"))).collect();
        assert_eq!(msg(&many), "Too many tags");
        assert!(check_tags(&[tag("awsx"), tag("a\u{e9}")]).is_ok());
        // A multi-byte character at byte 3 is not a reserved prefix (and does not panic).
        assert!(check_tags(&[tag("aw\u{e9}:")]).is_ok());
    }
}
