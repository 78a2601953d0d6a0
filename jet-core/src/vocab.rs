//! The Jingle (XEP-0166) words JET uses: [`Action`], [`Creator`],
//! [`Senders`] and the `<reason/>` conditions ([`Reason`]).
//!
//! Plain enums that need no XML library, so that the errors (each maps to a
//! [`Reason`]) stay in jet-core without features. Their wire forms are
//! XEP-0166's (`session-initiate`, `initiator`, `security-error`, ...): the
//! [`Display`](std::fmt::Display) and [`FromStr`] forms here, and with the
//! `xml` feature the minidom conversions (`Reason` to and from its condition
//! element, the others as attribute values). They are re-exported from
//! `jingle` and [`error`](crate::error).

use std::fmt;
use std::str::FromStr;

/// A value that is not one of the enum's wire forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    /// Which attribute or element it was read for (`action`, `creator`, ...).
    pub kind: &'static str,
    /// The value read.
    pub value: String,
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown value {:?} for Jingle {}", self.value, self.kind)
    }
}

impl std::error::Error for UnknownWord {}

/// Declares a field-less enum with its wire names, `FromStr` and `Display`.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The wire form, as in XEP-0166.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                Ok(match s {
                    $($wire => $name::$variant,)+
                    _ => return Err(UnknownWord { kind: $kind, value: s.to_string() }),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(
    /// The `action` of a `<jingle/>` (XEP-0166 §7.2).
    Action, "action", {
        /// `content-accept`
        ContentAccept => "content-accept",
        /// `content-add`
        ContentAdd => "content-add",
        /// `content-modify`
        ContentModify => "content-modify",
        /// `content-reject`
        ContentReject => "content-reject",
        /// `content-remove`
        ContentRemove => "content-remove",
        /// `description-info`
        DescriptionInfo => "description-info",
        /// `security-info`
        SecurityInfo => "security-info",
        /// `session-accept`
        SessionAccept => "session-accept",
        /// `session-info`
        SessionInfo => "session-info",
        /// `session-initiate`
        SessionInitiate => "session-initiate",
        /// `session-terminate`
        SessionTerminate => "session-terminate",
        /// `transport-accept`
        TransportAccept => "transport-accept",
        /// `transport-info`
        TransportInfo => "transport-info",
        /// `transport-reject`
        TransportReject => "transport-reject",
        /// `transport-replace`
        TransportReplace => "transport-replace",
    }
);

words!(
    /// Which party created a content (`creator`).
    Creator, "creator", {
        /// `initiator`
        Initiator => "initiator",
        /// `responder`
        Responder => "responder",
    }
);

words!(
    /// Which parties send media in a content (`senders`); `both` when absent.
    #[derive(Default)]
    Senders, "senders", {
        /// `both` (the default)
        #[default]
        Both => "both",
        /// `initiator`
        Initiator => "initiator",
        /// `none`
        None => "none",
        /// `responder`
        Responder => "responder",
    }
);

#[cfg(feature = "xml")]
impl minidom::IntoAttributeValue for Action {
    fn into_attribute_value(self) -> Option<String> {
        Some(self.as_str().to_string())
    }
}

#[cfg(feature = "xml")]
impl minidom::IntoAttributeValue for Creator {
    fn into_attribute_value(self) -> Option<String> {
        Some(self.as_str().to_string())
    }
}

/// `senders='both'` is the default and, as xmpp-parsers wrote it, left out.
#[cfg(feature = "xml")]
impl minidom::IntoAttributeValue for Senders {
    fn into_attribute_value(self) -> Option<String> {
        match self {
            Senders::Both => None,
            other => Some(other.as_str().to_string()),
        }
    }
}

/// The condition of a Jingle `<reason/>` (XEP-0166 §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `alternative-session`, with the other session's id if given.
    AlternativeSession {
        /// The `<sid/>` child's text.
        sid: Option<String>,
    },
    /// `busy`
    Busy,
    /// `cancel`
    Cancel,
    /// `connectivity-error`
    ConnectivityError,
    /// `decline`
    Decline,
    /// `expired`
    Expired,
    /// `failed-application`
    FailedApplication,
    /// `failed-transport`
    FailedTransport,
    /// `general-error`
    GeneralError,
    /// `gone`
    Gone,
    /// `incompatible-parameters`
    IncompatibleParameters,
    /// `media-error`
    MediaError,
    /// `security-error`
    SecurityError,
    /// `success`
    Success,
    /// `timeout`
    Timeout,
    /// `unsupported-applications`
    UnsupportedApplications,
    /// `unsupported-transports`
    UnsupportedTransports,
}

impl Reason {
    /// The condition's element name, e.g. `security-error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::AlternativeSession { .. } => "alternative-session",
            Reason::Busy => "busy",
            Reason::Cancel => "cancel",
            Reason::ConnectivityError => "connectivity-error",
            Reason::Decline => "decline",
            Reason::Expired => "expired",
            Reason::FailedApplication => "failed-application",
            Reason::FailedTransport => "failed-transport",
            Reason::GeneralError => "general-error",
            Reason::Gone => "gone",
            Reason::IncompatibleParameters => "incompatible-parameters",
            Reason::MediaError => "media-error",
            Reason::SecurityError => "security-error",
            Reason::Success => "success",
            Reason::Timeout => "timeout",
            Reason::UnsupportedApplications => "unsupported-applications",
            Reason::UnsupportedTransports => "unsupported-transports",
        }
    }
}

impl FromStr for Reason {
    type Err = UnknownWord;
    /// A condition by its element name; `alternative-session` without a sid.
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        Ok(match s {
            "alternative-session" => Reason::AlternativeSession { sid: None },
            "busy" => Reason::Busy,
            "cancel" => Reason::Cancel,
            "connectivity-error" => Reason::ConnectivityError,
            "decline" => Reason::Decline,
            "expired" => Reason::Expired,
            "failed-application" => Reason::FailedApplication,
            "failed-transport" => Reason::FailedTransport,
            "general-error" => Reason::GeneralError,
            "gone" => Reason::Gone,
            "incompatible-parameters" => Reason::IncompatibleParameters,
            "media-error" => Reason::MediaError,
            "security-error" => Reason::SecurityError,
            "success" => Reason::Success,
            "timeout" => Reason::Timeout,
            "unsupported-applications" => Reason::UnsupportedApplications,
            "unsupported-transports" => Reason::UnsupportedTransports,
            _ => {
                return Err(UnknownWord {
                    kind: "reason",
                    value: s.to_string(),
                })
            }
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The condition element, `<security-error xmlns='urn:xmpp:jingle:1'/>`
/// (`alternative-session` with its `<sid/>` when known).
#[cfg(feature = "xml")]
impl From<Reason> for minidom::Element {
    fn from(reason: Reason) -> minidom::Element {
        let b = minidom::Element::builder(reason.as_str(), crate::ns::JINGLE);
        match reason {
            Reason::AlternativeSession { sid: Some(sid) } => b
                .append(
                    minidom::Element::builder("sid", crate::ns::JINGLE)
                        .append(sid)
                        .build(),
                )
                .build(),
            _ => b.build(),
        }
    }
}

/// Reads a condition element in the Jingle namespace. Unknown attributes and
/// children are ignored; another namespace or an unknown name is an error.
#[cfg(feature = "xml")]
impl TryFrom<minidom::Element> for Reason {
    type Error = UnknownWord;
    fn try_from(el: minidom::Element) -> Result<Self, UnknownWord> {
        if el.ns() != crate::ns::JINGLE {
            return Err(UnknownWord {
                kind: "reason",
                value: format!("{{{}}}{}", el.ns(), el.name()),
            });
        }
        match el.name().parse::<Reason>()? {
            Reason::AlternativeSession { .. } => Ok(Reason::AlternativeSession {
                sid: el.get_child("sid", crate::ns::JINGLE).map(|s| s.text()),
            }),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms_round_trip() {
        for a in ["session-initiate", "transport-replace", "security-info"] {
            assert_eq!(a.parse::<Action>().unwrap().to_string(), a);
        }
        assert_eq!(Creator::Responder.to_string(), "responder");
        assert_eq!("none".parse::<Senders>().unwrap(), Senders::None);
        assert_eq!(Senders::default(), Senders::Both);
        assert_eq!(
            "unsupported-transports".parse::<Reason>().unwrap(),
            Reason::UnsupportedTransports
        );
        assert_eq!(Reason::SecurityError.to_string(), "security-error");
        let err = "session_initiate".parse::<Action>().unwrap_err();
        assert_eq!(err.kind, "action");
        assert!("both ".parse::<Senders>().is_err());
        assert!("Success".parse::<Reason>().is_err());
    }

    #[cfg(feature = "xml")]
    #[test]
    fn reason_elements_as_xep_0166_writes_them() {
        let el = minidom::Element::from(Reason::FailedTransport);
        assert!(el.is("failed-transport", crate::ns::JINGLE));
        assert_eq!(el.children().count(), 0);
        assert_eq!(Reason::try_from(el).unwrap(), Reason::FailedTransport);

        let alt = minidom::Element::from(Reason::AlternativeSession {
            sid: Some("s2".into()),
        });
        assert_eq!(
            alt.get_child("sid", crate::ns::JINGLE).unwrap().text(),
            "s2"
        );
        assert_eq!(
            Reason::try_from(alt).unwrap(),
            Reason::AlternativeSession {
                sid: Some("s2".into())
            }
        );

        use minidom::IntoAttributeValue;
        assert_eq!(Senders::Both.into_attribute_value(), None);
        assert_eq!(
            Senders::Initiator.into_attribute_value().as_deref(),
            Some("initiator")
        );
        assert_eq!(
            Action::SessionAccept.into_attribute_value().as_deref(),
            Some("session-accept")
        );
        assert_eq!(
            Creator::Initiator.into_attribute_value().as_deref(),
            Some("initiator")
        );

        let foreign = minidom::Element::builder("success", "urn:example").build();
        assert!(Reason::try_from(foreign).is_err());
        let unknown = minidom::Element::builder("nope", crate::ns::JINGLE).build();
        assert!(Reason::try_from(unknown).is_err());
    }
}
