//! The identity in a client certificate the listener verified (mutual TLS): its
//! subject and its subject alternative names, read once per handshake and carried
//! with the connection to the filters (`mtls`).

use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid2abbrev, oid_registry};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// A verified client certificate, as the `mtls` filter matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub subject: DistinguishedName,
    /// DNS names, e-mail addresses, URIs and IP addresses, as written.
    pub sans: Vec<String>,
}

impl ClientCertificate {
    /// Reads a DER certificate; `None` when it cannot be parsed (the verifier
    /// accepted it, so that does not happen for a certificate it checked).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let sans = super::certs::alt_names(&cert, |n| match n {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some((*s).to_owned())
            }
            GeneralName::IPAddress(b) => super::certs::ip_text(b),
            _ => None,
        });
        Some(Self {
            subject: DistinguishedName::from_x509(cert.subject()),
            sans,
        })
    }

    /// Whether one of its SANs is `name` (DNS names compare without case).
    pub fn has_san(&self, name: &str) -> bool {
        self.sans.iter().any(|s| s.eq_ignore_ascii_case(name))
    }
}

/// How a consumer's client certificate is recognised: by its whole subject, or
/// by one of its subject alternative names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertMatch {
    Subject(DistinguishedName),
    San(String),
}

impl ClientCertMatch {
    pub fn matches(&self, cert: &ClientCertificate) -> bool {
        match self {
            Self::Subject(dn) => *dn == cert.subject,
            Self::San(name) => cert.has_san(name),
        }
    }
}

/// A distinguished name as a set of `ATTRIBUTE=value` pairs: the order of the
/// attributes and the spelling of the separators do not matter, so
/// `CN=partner-bank, O=Bank` (RFC 4514 order reversed), `O = Bank, CN = partner-bank`
/// (what `openssl x509 -subject` prints) and `/O=Bank/CN=partner-bank` are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DistinguishedName(Vec<(String, String)>);

impl DistinguishedName {
    fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.sort();
        Self(pairs)
    }

    fn from_x509(name: &X509Name<'_>) -> Self {
        let pairs = name
            .iter()
            .flat_map(|rdn| rdn.iter())
            .map(|attr| {
                let key = oid2abbrev(attr.attr_type(), oid_registry())
                    .map_or_else(|_| attr.attr_type().to_id_string(), str::to_owned);
                let value = attr.as_str().map_or_else(
                    |_| String::from_utf8_lossy(attr.attr_value().data).into_owned(),
                    str::to_owned,
                );
                (attribute_key(&key), value)
            })
            .collect();
        Self::new(pairs)
    }

    /// Parses a subject as an operator writes it (see the type's documentation).
    /// `\,` keeps a comma inside a value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (separator, body) = match text.strip_prefix('/') {
            Some(rest) => ('/', rest),
            None => (',', text),
        };
        let mut pairs = Vec::new();
        for part in split_unescaped(body, separator) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!(
                    "{part:?} is not ATTRIBUTE=value (e.g. \"CN=partner-bank, O=Bank\")"
                ));
            };
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(format!(
                    "{key:?} is not an attribute name such as CN, O or OU"
                ));
            }
            pairs.push((attribute_key(key), value.trim().to_owned()));
        }
        if pairs.is_empty() {
            return Err("the subject is empty (e.g. \"CN=partner-bank\")".to_owned());
        }
        Ok(Self::new(pairs))
    }
}

impl std::fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Attribute names compare without case; OpenSSL's `emailAddress` is `Email`.
fn attribute_key(key: &str) -> String {
    let upper = key.to_ascii_uppercase();
    match upper.as_str() {
        "EMAILADDRESS" | "E" => "EMAIL".to_owned(),
        _ => upper,
    }
}

/// `text` split at `separator`s not preceded by a backslash, escapes removed.
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), parts.last_mut()) {
                    last.push(next);
                }
            }
            c if c == separator => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::DistinguishedName as Dn;

    #[test]
    fn spellings_of_one_subject_are_equal() {
        let a = Dn::parse("CN=partner-bank, O=Bank").unwrap();
        assert_eq!(a, Dn::parse("O = Bank, CN = partner-bank").unwrap());
        assert_eq!(a, Dn::parse("/O=Bank/CN=partner-bank").unwrap());
        assert_eq!(a, Dn::parse("cn=partner-bank,o=Bank").unwrap());
        assert_ne!(a, Dn::parse("CN=partner-bank").unwrap());
        assert_ne!(a, Dn::parse("CN=Partner-bank, O=Bank").unwrap());
        assert_eq!(
            Dn::parse("emailAddress=ops@bank.test").unwrap(),
            Dn::parse("Email=ops@bank.test").unwrap()
        );
        assert_eq!(
            Dn::parse(r"O=Bank\, Ltd, CN=x").unwrap().to_string(),
            "CN=x, O=Bank, Ltd"
        );
    }

    #[test]
    fn malformed_subjects_say_why() {
        assert!(Dn::parse("").unwrap_err().contains("empty"));
        assert!(Dn::parse("partner-bank")
            .unwrap_err()
            .contains("ATTRIBUTE=value"));
        assert!(Dn::parse("C N=x").unwrap_err().contains("attribute name"));
    }
}
