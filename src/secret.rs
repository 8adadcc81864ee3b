//! Secrets through serde, read straight into a zeroising [`SecretString`] and written
//! from one (secrecy's own `Deserialize` does not cover `SecretString`). Use with
//! `#[serde(with = "crate::secret")]`, or `crate::secret::option` for an `Option`.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

pub mod option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        Option::<String>::deserialize(d).map(|s| s.map(SecretString::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize, Deserialize)]
    struct Held {
        #[serde(with = "crate::secret")]
        value: SecretString,
        #[serde(default, deserialize_with = "option::deserialize", skip_serializing)]
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
