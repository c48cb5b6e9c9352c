//! Aliases, tags and key policies through the real `aws-sdk-kms` client.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::collections::BTreeMap;

use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};

const ACCOUNT: &str = "111122223333";

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().tag_key(k).tag_value(v).build().unwrap()
}

fn alias_arn(name: &str) -> String {
    format!("arn:aws:kms:us-east-1:{ACCOUNT}:{name}")
}

async fn tags_of(kms: &aws_sdk_kms::Client, key: &str) -> BTreeMap<String, String> {
    let out = kms.list_resource_tags().key_id(key).send().await.unwrap();
    assert!(!out.truncated());
    out.tags()
        .iter()
        .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
        .collect()
}

async fn alias_names(kms: &aws_sdk_kms::Client, key: Option<&str>) -> Vec<String> {
    let out = kms
        .list_aliases()
        .set_key_id(key.map(str::to_string))
        .send()
        .await
        .unwrap();
    out.aliases()
        .iter()
        .map(|a| a.alias_name().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Aliases

#[tokio::test]
async fn alias_lifecycle() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (a, _) = common::new_key(&kms).await;
    let (b, b_arn) = common::new_key(&kms).await;

    kms.create_alias()
        .alias_name("alias/app/Prod_1-x")
        .target_key_id(&a)
        .send()
        .await
        .unwrap();
    let list = kms.list_aliases().send().await.unwrap();
    assert!(!list.truncated());
    assert!(list.next_marker().is_none());
    assert_eq!(list.aliases().len(), 1);
    let entry = &list.aliases()[0];
    assert_eq!(entry.alias_name(), Some("alias/app/Prod_1-x"));
    assert_eq!(
        entry.alias_arn(),
        Some(alias_arn("alias/app/Prod_1-x").as_str())
    );
    assert_eq!(entry.target_key_id(), Some(a.as_str()));
    let created = *entry.creation_date().unwrap();
    assert_eq!(entry.last_updated_date(), Some(&created));

    // UpdateAlias repoints it (target by ARN) and moves LastUpdatedDate only.
    srv.clock.advance(chrono::Duration::hours(1));
    kms.update_alias()
        .alias_name("alias/app/Prod_1-x")
        .target_key_id(&b_arn)
        .send()
        .await
        .unwrap();
    let list = kms.list_aliases().send().await.unwrap();
    let entry = &list.aliases()[0];
    assert_eq!(entry.target_key_id(), Some(b.as_str()));
    assert_eq!(entry.creation_date(), Some(&created));
    let updated = entry.last_updated_date().unwrap().as_secs_f64();
    assert!(
        (updated - created.as_secs_f64() - 3600.0).abs() < 5.0,
        "{updated} vs {}",
        created.as_secs_f64()
    );
    let md = kms
        .describe_key()
        .key_id("alias/app/Prod_1-x")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_id(), b);

    // DeleteAlias removes only the alias.
    kms.delete_alias()
        .alias_name("alias/app/Prod_1-x")
        .send()
        .await
        .unwrap();
    assert!(alias_names(&kms, None).await.is_empty());
    let md = kms
        .describe_key()
        .key_id(&b)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert!(md.enabled());
    let (c, m) = common::fail(
        kms.delete_alias()
            .alias_name("alias/app/Prod_1-x")
            .send()
            .await,
    );
    assert_eq!(c, "NotFoundException");
    assert_eq!(
        m,
        format!("Alias {} is not found.", alias_arn("alias/app/Prod_1-x"))
    );
}

#[tokio::test]
async fn list_aliases_filter_and_paging() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (a, a_arn) = common::new_key(&kms).await;
    let (b, _) = common::new_key(&kms).await;
    let (c_key, _) = common::new_key(&kms).await;
    for name in ["alias/a1", "alias/a2", "alias/a3"] {
        kms.create_alias()
            .alias_name(name)
            .target_key_id(&a)
            .send()
            .await
            .unwrap();
    }
    for name in ["alias/b1", "alias/b2"] {
        kms.create_alias()
            .alias_name(name)
            .target_key_id(&b)
            .send()
            .await
            .unwrap();
    }

    // Filter by key id or key ARN.
    assert_eq!(
        alias_names(&kms, Some(&a)).await,
        vec!["alias/a1", "alias/a2", "alias/a3"]
    );
    assert_eq!(
        alias_names(&kms, Some(&a_arn)).await,
        vec!["alias/a1", "alias/a2", "alias/a3"]
    );
    assert_eq!(
        alias_names(&kms, Some(&b)).await,
        vec!["alias/b1", "alias/b2"]
    );
    assert!(alias_names(&kms, Some(&c_key)).await.is_empty());
    let all = alias_names(&kms, None).await;
    assert_eq!(
        all,
        vec!["alias/a1", "alias/a2", "alias/a3", "alias/b1", "alias/b2"]
    );

    // Pages of two.
    let mut marker: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = kms
            .list_aliases()
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.aliases().len() <= 2);
        seen.extend(
            page.aliases()
                .iter()
                .map(|a| a.alias_name().unwrap().to_string()),
        );
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = Some(page.next_marker().unwrap().to_string());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);

    // Paging within a key filter.
    let page = kms.list_aliases().key_id(&a).limit(2).send().await.unwrap();
    assert!(page.truncated());
    assert_eq!(page.aliases().len(), 2);
    let rest = kms
        .list_aliases()
        .key_id(&a)
        .limit(2)
        .marker(page.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert!(!rest.truncated());
    assert_eq!(rest.aliases().len(), 1);
    assert_eq!(rest.aliases()[0].alias_name(), Some("alias/a3"));

    // Limit bounds and a bad marker.
    for bad in [0, 101] {
        let (c, m) = common::fail(kms.list_aliases().limit(bad).send().await);
        assert_eq!(c, "ValidationException");
        assert!(m.contains(&format!("Value '{bad}' at 'limit'")), "{m}");
    }
    let (c, _) = common::fail(kms.list_aliases().marker("nonsense").send().await);
    assert_eq!(c, "InvalidMarkerException");
    // The other account sees none of them.
    assert!(alias_names(&srv.other_client(), None).await.is_empty());
}

#[tokio::test]
async fn alias_name_rules() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let (other, _) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/dup")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();

    // Duplicate, even pointing at another key.
    let (c, m) = common::fail(
        kms.create_alias()
            .alias_name("alias/dup")
            .target_key_id(&other)
            .send()
            .await,
    );
    assert_eq!(c, "AlreadyExistsException");
    assert_eq!(
        m,
        format!(
            "An alias with the name {} already exists",
            alias_arn("alias/dup")
        )
    );
    // Names are case-sensitive: a different case is a different alias.
    kms.create_alias()
        .alias_name("alias/DUP")
        .target_key_id(&other)
        .send()
        .await
        .unwrap();

    // Reserved prefix.
    let (c, m) = common::fail(
        kms.create_alias()
            .alias_name("alias/aws/mine")
            .target_key_id(&id)
            .send()
            .await,
    );
    assert_eq!(c, "InvalidAliasNameException");
    assert!(m.contains("alias/aws/"), "{m}");

    // Characters outside [a-zA-Z0-9:/_-].
    let (c, m) = common::fail(
        kms.create_alias()
            .alias_name("alias/has space")
            .target_key_id(&id)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value 'alias/has space' at 'aliasName' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
    );
    // Missing the alias/ prefix, or nothing after it.
    for bad in ["noprefix", "alias/"] {
        let (c, m) = common::fail(
            kms.create_alias()
                .alias_name(bad)
                .target_key_id(&id)
                .send()
                .await,
        );
        assert_eq!(c, "ValidationException", "{bad}");
        assert!(m.contains("alias/"), "{m}");
    }
    // Too long.
    let long = format!("alias/{}", "x".repeat(251));
    assert_eq!(long.len(), 257);
    let (c, m) = common::fail(
        kms.create_alias()
            .alias_name(&long)
            .target_key_id(&id)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert!(
        m.ends_with("Member must have length less than or equal to 256"),
        "{m}"
    );
    let max = format!("alias/{}", "x".repeat(250));
    kms.create_alias()
        .alias_name(&max)
        .target_key_id(&id)
        .send()
        .await
        .unwrap();

    // UpdateAlias and DeleteAlias also refuse reserved or malformed names.
    let (c, _) = common::fail(kms.delete_alias().alias_name("alias/bad name").send().await);
    assert_eq!(c, "ValidationException");
    let (c, _) = common::fail(
        kms.update_alias()
            .alias_name("alias/bad name")
            .target_key_id(&id)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");

    // Only the good ones exist.
    assert_eq!(
        alias_names(&kms, None).await,
        vec!["alias/DUP".to_string(), "alias/dup".to_string(), max]
    );
}

/// UpdateAlias keeps the key type (symmetric, asymmetric or HMAC) and the key usage; the key
/// spec may change [003:L1652-1656].
#[tokio::test]
async fn update_alias_keeps_key_type_and_usage_not_spec() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let create = |spec: &str, usage: &str| {
        kms.create_key()
            .key_spec(KeySpec::from(spec))
            .key_usage(KeyUsageType::from(usage))
            .send()
    };
    let id =
        |out: aws_sdk_kms::operation::create_key::CreateKeyOutput| out.key_metadata.unwrap().key_id;
    let rsa_sign = id(create("RSA_2048", "SIGN_VERIFY").await.unwrap());
    let ecc_sign = id(create("ECC_NIST_P256", "SIGN_VERIFY").await.unwrap());
    let rsa_enc = id(create("RSA_2048", "ENCRYPT_DECRYPT").await.unwrap());
    let hmac_256 = id(create("HMAC_256", "GENERATE_VERIFY_MAC").await.unwrap());
    let hmac_512 = id(create("HMAC_512", "GENERATE_VERIFY_MAC").await.unwrap());
    let (sym, _) = common::new_key(&kms).await;
    for (alias, target) in [("alias/sign", &rsa_sign), ("alias/mac", &hmac_256)] {
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(target)
            .send()
            .await
            .unwrap();
    }
    // Another spec of the same type and usage.
    for (alias, target) in [("alias/sign", &ecc_sign), ("alias/mac", &hmac_512)] {
        kms.update_alias()
            .alias_name(alias)
            .target_key_id(target)
            .send()
            .await
            .unwrap();
    }
    // Another usage, or another type.
    for (alias, target) in [
        ("alias/sign", &rsa_enc),
        ("alias/sign", &sym),
        ("alias/mac", &sym),
        ("alias/mac", &ecc_sign),
    ] {
        let (c, _) = common::fail(
            kms.update_alias()
                .alias_name(alias)
                .target_key_id(target)
                .send()
                .await,
        );
        assert_eq!(c, "ValidationException", "{alias} -> {target}");
    }
}

#[tokio::test]
async fn fifty_aliases_per_key() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let (other, _) = common::new_key(&kms).await;
    for i in 0..50 {
        kms.create_alias()
            .alias_name(format!("alias/n{i:02}"))
            .target_key_id(&id)
            .send()
            .await
            .unwrap();
    }
    let (c, m) = common::fail(
        kms.create_alias()
            .alias_name("alias/n50")
            .target_key_id(&arn)
            .send()
            .await,
    );
    // AWS's words (recorded AWS response, docs/errors.md).
    assert_eq!(
        (c.as_str(), m.as_str()),
        (
            "LimitExceededException",
            "Aliases per key quota for this account in this region is 50, current usage is 50."
        )
    );
    // Pointing another alias at the full key is the same quota.
    kms.create_alias()
        .alias_name("alias/elsewhere")
        .target_key_id(&other)
        .send()
        .await
        .unwrap();
    let (c, m) = common::fail(
        kms.update_alias()
            .alias_name("alias/elsewhere")
            .target_key_id(&id)
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        (
            "LimitExceededException",
            "Aliases per key quota for this account in this region is 50, current usage is 50."
        )
    );
    // Repointing an alias of the full key to itself changes nothing and is allowed.
    kms.update_alias()
        .alias_name("alias/n01")
        .target_key_id(&arn)
        .send()
        .await
        .unwrap();
    // Other keys are unaffected, and a freed slot can be reused.
    kms.create_alias()
        .alias_name("alias/n50")
        .target_key_id(&other)
        .send()
        .await
        .unwrap();
    kms.delete_alias()
        .alias_name("alias/n00")
        .send()
        .await
        .unwrap();
    kms.create_alias()
        .alias_name("alias/n51")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let page = kms
        .list_aliases()
        .key_id(&id)
        .limit(100)
        .send()
        .await
        .unwrap();
    assert_eq!(page.aliases().len(), 50);
}

// ---------------------------------------------------------------------------------------------
// Tags

#[tokio::test]
async fn tag_resource_upserts_and_untag_is_lenient() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    assert!(tags_of(&kms, &id).await.is_empty());

    kms.tag_resource()
        .key_id(&id)
        .tags(tag("env", "prod"))
        .tags(tag("Env", "Prod"))
        .tags(tag("owner", ""))
        .send()
        .await
        .unwrap();
    let expected: BTreeMap<String, String> = [("Env", "Prod"), ("env", "prod"), ("owner", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(tags_of(&kms, &id).await, expected);

    // Same key, new value: overwritten; by ARN.
    kms.tag_resource()
        .key_id(&arn)
        .tags(tag("env", "staging"))
        .send()
        .await
        .unwrap();
    let tags = tags_of(&kms, &id).await;
    assert_eq!(tags.len(), 3);
    assert_eq!(tags["env"], "staging");
    assert_eq!(tags["Env"], "Prod");

    // Untag one existing and one missing key: no error.
    kms.untag_resource()
        .key_id(&id)
        .tag_keys("Env")
        .tag_keys("never-there")
        .send()
        .await
        .unwrap();
    let tags = tags_of(&kms, &arn).await;
    assert_eq!(tags.keys().collect::<Vec<_>>(), vec!["env", "owner"]);
    kms.untag_resource()
        .key_id(&id)
        .tag_keys("never-there")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&kms, &id).await.len(), 2);

    // Reserved prefix (in any case) and duplicates in one request: AWS's exception and words
    // (recorded AWS responses, docs/errors.md).
    for reserved in ["aws:createdBy", "AWS:createdBy", "Aws:x"] {
        let (c, m) = common::fail(
            kms.tag_resource()
                .key_id(&id)
                .tags(tag(reserved, "me"))
                .send()
                .await,
        );
        assert_eq!(
            (c.as_str(), m.as_str()),
            ("TagException", "Tags beginning with aws: are reserved")
        );
    }
    let (c, m) = common::fail(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag("dup", "1"))
            .tags(tag("dup", "2"))
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        ("TagException", "Duplicate tag keys")
    );
    // More than 50 tags in one request.
    let mut req = kms.tag_resource().key_id(&id);
    for i in 0..51 {
        req = req.tags(tag(&format!("t{i}"), "v"));
    }
    let (c, m) = common::fail(req.send().await);
    assert_eq!((c.as_str(), m.as_str()), ("TagException", "Too many tags"));
    // Lengths: the member is named by its 1-based position in the list.
    let long_key = "k".repeat(129);
    let (c, m) = common::fail(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag(&long_key, "v"))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        format!(
            "1 validation error detected: Value '{long_key}' at 'tags.1.member.tagKey' failed \
             to satisfy constraint: Member must have length less than or equal to 128"
        )
    );
    let long_value = "v".repeat(257);
    let (c, m) = common::fail(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag("k", "v"))
            .tags(tag("k2", &long_value))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        format!(
            "1 validation error detected: Value '{long_value}' at 'tags.2.member.tagValue' \
             failed to satisfy constraint: Member must have length less than or equal to 256"
        )
    );
    // The same rules at CreateKey.
    let mut req = kms.create_key();
    for i in 0..51 {
        req = req.tags(tag(&format!("t{i}"), "v"));
    }
    let (c, m) = common::fail(req.send().await);
    assert_eq!((c.as_str(), m.as_str()), ("TagException", "Too many tags"));
    let (c, m) = common::fail(
        kms.create_key()
            .tags(tag("AWS:key1", "value1"))
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        ("TagException", "Tags beginning with aws: are reserved")
    );
    // Nothing changed.
    assert_eq!(tags_of(&kms, &id).await.len(), 2);
}

#[tokio::test]
async fn list_resource_tags_pages() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let mut req = kms.tag_resource().key_id(&id);
    for i in 0..5 {
        req = req.tags(tag(&format!("t{i}"), &format!("v{i}")));
    }
    req.send().await.unwrap();

    let first = kms
        .list_resource_tags()
        .key_id(&id)
        .limit(2)
        .send()
        .await
        .unwrap();
    assert!(first.truncated());
    let keys: Vec<&str> = first.tags().iter().map(|t| t.tag_key()).collect();
    assert_eq!(keys, vec!["t0", "t1"]);
    let mut marker = first.next_marker().unwrap().to_string();
    let mut all: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    loop {
        let page = kms
            .list_resource_tags()
            .key_id(&id)
            .limit(2)
            .marker(&marker)
            .send()
            .await
            .unwrap();
        all.extend(page.tags().iter().map(|t| t.tag_key().to_string()));
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = page.next_marker().unwrap().to_string();
    }
    assert_eq!(all, vec!["t0", "t1", "t2", "t3", "t4"]);

    let (c, m) = common::fail(kms.list_resource_tags().key_id(&id).limit(51).send().await);
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '51' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 50"
    );
}

#[tokio::test]
async fn fifty_tags_per_key() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let mut req = kms.tag_resource().key_id(&id);
    for i in 0..50 {
        req = req.tags(tag(&format!("k{i:02}"), "v"));
    }
    req.send().await.unwrap();
    assert_eq!(tags_of(&kms, &id).await.len(), 50);

    // A 51st key fails ...
    let (c, _) = common::fail(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag("k50", "v"))
            .send()
            .await,
    );
    assert_eq!(c, "LimitExceededException");
    // ... but overwriting an existing one is fine.
    kms.tag_resource()
        .key_id(&id)
        .tags(tag("k00", "new"))
        .send()
        .await
        .unwrap();
    let tags = tags_of(&kms, &id).await;
    assert_eq!(tags.len(), 50);
    assert_eq!(tags["k00"], "new");
    assert!(!tags.contains_key("k50"));

    // 51 tags in one request on a fresh key: AWS's TagException (recorded AWS response,
    // docs/errors.md).
    let (fresh, _) = common::new_key(&kms).await;
    let mut req = kms.tag_resource().key_id(&fresh);
    for i in 0..51 {
        req = req.tags(tag(&format!("k{i:02}"), "v"));
    }
    let (c, m) = common::fail(req.send().await);
    assert_eq!((c.as_str(), m.as_str()), ("TagException", "Too many tags"));
    assert!(tags_of(&kms, &fresh).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Key policy

#[tokio::test]
async fn default_key_policy() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let out = kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    assert_eq!(out.policy_name(), Some("default"));
    let doc: serde_json::Value = serde_json::from_str(out.policy().unwrap()).unwrap();
    assert_eq!(doc["Version"], "2012-10-17");
    assert_eq!(doc["Id"], "key-default-1");
    let statements = doc["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Sid"], "Enable IAM User Permissions");
    assert_eq!(s["Effect"], "Allow");
    assert_eq!(
        s["Principal"]["AWS"],
        format!("arn:aws:iam::{ACCOUNT}:root")
    );
    assert_eq!(s["Action"], "kms:*");
    assert_eq!(s["Resource"], "*");

    // By ARN, and PolicyName may be omitted.
    let again = kms.get_key_policy().key_id(&arn).send().await.unwrap();
    assert_eq!(again.policy(), out.policy());

    // Another account's key gets its own root principal.
    let other = srv.other_client();
    let (their, _) = common::new_key(&other).await;
    let theirs = other
        .get_key_policy()
        .key_id(&their)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(theirs.policy().unwrap()).unwrap();
    assert_eq!(
        doc["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::444455556666:root"
    );

    let list = kms.list_key_policies().key_id(&id).send().await.unwrap();
    assert_eq!(list.policy_names(), &["default".to_string()]);
    assert!(!list.truncated());
}

#[tokio::test]
async fn put_key_policy_round_trip_and_validation() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let policy = format!(
        "{{\n \"Version\": \"2012-10-17\",\n \"Id\": \"custom-policy\",\n \"Statement\": [{{\n  \
         \"Sid\": \"Allow admins\",\n  \"Effect\": \"Allow\",\n  \"Principal\": {{\"AWS\": \
         \"arn:aws:iam::{ACCOUNT}:root\"}},\n  \"Action\": \"kms:*\",\n  \"Resource\": \"*\"\n }}]\n}}"
    );
    kms.put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(&policy)
        .send()
        .await
        .unwrap();
    let got = kms
        .get_key_policy()
        .key_id(&arn)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), Some(policy.as_str()));

    // A policy given at CreateKey is stored verbatim too.
    let created = kms
        .create_key()
        .policy(&policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let got = kms
        .get_key_policy()
        .key_id(created.key_id())
        .policy_name("default")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), Some(policy.as_str()));

    // Any other policy name.
    let (c, _) = common::fail(
        kms.get_key_policy()
            .key_id(&id)
            .policy_name("custom")
            .send()
            .await,
    );
    assert_eq!(c, "NotFoundException");
    let (c, _) = common::fail(
        kms.put_key_policy()
            .key_id(&id)
            .policy_name("custom")
            .policy(&policy)
            .send()
            .await,
    );
    assert_eq!(c, "NotFoundException");
    let (c, m) = common::fail(
        kms.get_key_policy()
            .key_id(&id)
            .policy_name("not-a-word")
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert!(m.contains("'policyName'"), "{m}");

    // Malformed documents.
    for bad in [
        "not json",
        "[]",
        "{\"Version\": \"2012-10-17\"}",
        "{\"Statement\": []}",
        "{\"Statement\": [{\"Effect\": \"Maybe\", \"Principal\": \"*\", \"Action\": \"kms:*\"}]}",
        "{\"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"kms:*\"}]}",
    ] {
        let (c, _) = common::fail(
            kms.put_key_policy()
                .key_id(&id)
                .policy_name("default")
                .policy(bad)
                .send()
                .await,
        );
        assert_eq!(c, "MalformedPolicyDocumentException", "{bad}");
    }
    // Too large, or characters outside the allowed set.
    let huge = format!(
        "{{\"Statement\": [{{\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"kms:*\", \
         \"Sid\": \"{}\"}}]}}",
        "x".repeat(32_768)
    );
    let (c, m) = common::fail(
        kms.put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(&huge)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    // One violation, however the limit is exceeded (docs/errors.md).
    let one = |value: &str| {
        format!(
            "1 validation error detected: Value '{value}' at 'policy' failed to satisfy \
             constraint: Member must have length less than or equal to 32768"
        )
    };
    assert_eq!(m, one(&huge));
    // Over 32 KB in bytes but not in characters (Latin-1 letters take two bytes in UTF-8).
    let wide = format!(
        "{{\"Statement\": [{{\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"kms:*\", \
         \"Sid\": \"{}\"}}]}}",
        "\u{e9}".repeat(20_000)
    );
    let (c, m) = common::fail(
        kms.put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(&wide)
            .send()
            .await,
    );
    assert_eq!((c.as_str(), m), ("ValidationException", one(&wide)));
    let (c, _) = common::fail(
        kms.put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(policy.replace("Allow admins", "Allow \u{263a}"))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");

    // The stored policy is unchanged after all those failures.
    let got = kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), Some(policy.as_str()));
}
