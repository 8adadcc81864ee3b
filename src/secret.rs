//! Writing a [`SecretString`] out through serde, for the cache files.
//!
//! Reading one needs nothing here: secrecy's `serde` feature deserialises a
//! `SecretString` (and so an `Option<SecretString>`) straight into its zeroising
//! box. It deliberately gives no `Serialize`, so a secret is never written by
//! accident; a field that must be written says so with
//! `#[serde(serialize_with = "crate::secret::serialize")]`.

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

pub fn serialize<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// [`serialize`] for an optional secret (`null` when absent).
pub fn serialize_opt<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Held {
        #[serde(serialize_with = "serialize")]
        value: SecretString,
        #[serde(skip_serializing)]
        maybe: Option<SecretString>,
    }

    #[test]
    fn round_trips_and_never_prints() {
        let h: Held = serde_json::from_str(r#"{"value":"s3cr3t","maybe":"t0ken"}"#).unwrap();
        assert_eq!(h.value.expose_secret(), "s3cr3t");
        assert_eq!(h.maybe.as_ref().unwrap().expose_secret(), "t0ken");
        assert!(!format!("{:?}", h.value).contains("s3cr3t"));
        assert_eq!(serde_json::to_string(&h).unwrap(), r#"{"value":"s3cr3t"}"#);
        let none: Held = serde_json::from_str(r#"{"value":"x"}"#).unwrap();
        assert!(none.maybe.is_none());
    }
}
