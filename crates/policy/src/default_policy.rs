//! The programmatic default key policy (CreateKey and ReplicateKey without `Policy`), laid out
//! byte for byte as `GetKeyPolicy` returns it (reference §2).

/// The default key policy of a key owned by `account` in the `aws` partition.
pub fn default_key_policy(account: &str) -> String {
    default_key_policy_in_partition("aws", account)
}

/// The default key policy of a key owned by `account` in `partition`.
pub fn default_key_policy_in_partition(partition: &str, account: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \
         \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \
         \"AWS\" : \"arn:{partition}:iam::{account}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \
         \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_exact() {
        let expected = r#"{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::111122223333:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}"#;
        assert_eq!(default_key_policy("111122223333"), expected);
    }
}
