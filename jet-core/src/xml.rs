//! Small helpers over minidom 0.19, whose attribute API wants validated
//! `NcName`s: `builder.a("type", "set")` instead of
//! `builder.attr(NcName::try_from("type").unwrap(), "set")`.

use minidom::convert::IntoAttributeValue;
use minidom::rxml::{Namespace, NcName};
use minidom::{Element, ElementBuilder};

/// An attribute name. Panics on names that are not XML NCNames, which only
/// happens with a programming error (all our names are literals).
pub fn nc(name: &str) -> NcName {
    NcName::try_from(name).unwrap_or_else(|_| panic!("{name:?} is not a valid XML attribute name"))
}

/// Attribute setters with plain string names.
pub trait BuilderExt {
    /// Adds attribute `name` (no namespace).
    fn a<V: IntoAttributeValue>(self, name: &str, value: V) -> Self;
}

impl BuilderExt for ElementBuilder {
    fn a<V: IntoAttributeValue>(self, name: &str, value: V) -> Self {
        self.attr(nc(name), value)
    }
}

/// Attribute setters on built elements.
pub trait ElementExt {
    /// Sets (or replaces) attribute `name` (no namespace).
    fn set_a<V: IntoAttributeValue>(&mut self, name: &str, value: V);
    /// Serializes the element to a string (namespaces declared as needed).
    fn to_xml_string(&self) -> String;
}

impl ElementExt for Element {
    fn set_a<V: IntoAttributeValue>(&mut self, name: &str, value: V) {
        self.set_attr(Namespace::NONE, nc(name), value);
    }

    fn to_xml_string(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail for an element we hold.
        self.write_to(&mut out)
            .expect("serializing an element into memory");
        String::from_utf8(out).expect("minidom writes UTF-8")
    }
}

/// Parses one element from a string.
pub fn parse(xml: &str) -> Result<Element, minidom::Error> {
    xml.parse()
}
