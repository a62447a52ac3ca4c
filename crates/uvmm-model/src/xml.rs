//! A small, faithful XML tree for libvirt documents.
//!
//! libvirt definitions carry elements and attributes this project does not model (hostdev,
//! qemu:commandline, vendor metadata ...). Edits must keep them byte-for-byte in meaning, so
//! the tree stores qualified names exactly as written (prefix included), attributes in their
//! original order and every text, comment and CDATA node. Namespace declarations are plain
//! attributes, which makes serialisation a straight walk.
//!
//! Input is never trusted: DOCTYPE declarations (and so custom entities) are refused, the
//! nesting depth and the input size are bounded, and unknown entity references are errors.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Largest document accepted; libvirt's own definitions are a few KiB.
pub const MAX_XML_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting accepted; real libvirt XML stays below 10.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("XML is not well-formed: {0}")]
    Syntax(String),
    #[error("XML document is larger than {MAX_XML_BYTES} bytes")]
    TooLarge,
    #[error("XML nesting is deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("DOCTYPE declarations are not accepted")]
    Doctype,
    #[error("unknown entity reference &{0};")]
    Entity(String),
    #[error("XML document has no root element")]
    NoRoot,
    #[error("expected root element <{expected}>, found <{found}>")]
    WrongRoot { expected: String, found: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
    Comment(String),
    CData(String),
    /// Processing instruction, stored raw (target and content).
    Pi(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Qualified name as written, e.g. `disk` or `uvmm:notes`.
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder: add an attribute.
    pub fn with_attr(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set_attr(key, value);
        self
    }

    /// Builder: add a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: set the text content.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.set_text(text);
        self
    }

    /// Local part of the name (after any prefix).
    pub fn local_name(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_attr(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key.to_string(), value)),
        }
    }

    pub fn remove_attr(&mut self, key: &str) -> Option<String> {
        let pos = self.attrs.iter().position(|(k, _)| k == key)?;
        Some(self.attrs.remove(pos).1)
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    pub fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// First child element with this (qualified) name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.elements_mut().find(|e| e.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.elements().filter(move |e| e.name == name)
    }

    /// Follow a `/`-separated path of child names.
    pub fn find(&self, path: &str) -> Option<&Element> {
        path.split('/').try_fold(self, |el, part| el.child(part))
    }

    /// Concatenated text and CDATA content of this element (not of descendants).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            match n {
                Node::Text(t) | Node::CData(t) => out.push_str(t),
                _ => {}
            }
        }
        out
    }

    /// Trimmed text of a child, if the child exists.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text().trim().to_string())
    }

    /// Replace all text content with `text`, keeping child elements.
    pub fn set_text(&mut self, text: impl Into<String>) {
        self.children
            .retain(|n| !matches!(n, Node::Text(_) | Node::CData(_)));
        self.children.insert(0, Node::Text(text.into()));
    }

    /// Get a child element, creating it at the end when it is missing.
    pub fn ensure_child(&mut self, name: &str) -> &mut Element {
        if let Some(pos) = self.position_of(name) {
            match &mut self.children[pos] {
                Node::Element(e) => return e,
                _ => unreachable!("position_of only returns element positions"),
            }
        }
        self.push_child(Element::new(name))
    }

    fn position_of(&self, name: &str) -> Option<usize> {
        self.children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.name == name))
    }

    /// Append a child element and return it.
    pub fn push_child(&mut self, child: Element) -> &mut Element {
        self.children.push(Node::Element(child));
        match self.children.last_mut() {
            Some(Node::Element(e)) => e,
            _ => unreachable!("an element was just pushed"),
        }
    }

    /// Remove every child element for which `pred` is true; returns how many were removed.
    pub fn remove_children(&mut self, mut pred: impl FnMut(&Element) -> bool) -> usize {
        let before = self.children.len();
        self.children
            .retain(|n| !matches!(n, Node::Element(e) if pred(e)));
        before - self.children.len()
    }

    /// Serialise this element (and its subtree) as XML text.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        write_element(self, &mut out);
        out
    }
}

/// Parse a complete document and return its root element. Comments and PIs outside the
/// root are dropped: libvirt does not keep them either.
pub fn parse(input: &str) -> Result<Element, XmlError> {
    if input.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge);
    }
    let mut reader = Reader::from_str(input);
    reader.config_mut().check_end_names = true;
    reader.config_mut().expand_empty_elements = false;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;

    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Syntax(format!("{e} at byte {}", reader.error_position())))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                if root.is_some() {
                    return Err(XmlError::Syntax("content after the root element".into()));
                }
                stack.push(element_from_start(&start)?);
            }
            Event::Empty(start) => {
                let el = element_from_start(&start)?;
                attach(&mut stack, &mut root, Node::Element(el))?;
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("unexpected closing tag".into()))?;
                attach(&mut stack, &mut root, Node::Element(el))?;
            }
            Event::Text(t) => {
                let text = t
                    .xml10_content()
                    .map_err(|e| XmlError::Syntax(e.to_string()))?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| XmlError::Syntax(e.to_string()))?
                        .ok_or_else(|| XmlError::Syntax("invalid character reference".into()))?
                        .to_string()
                } else {
                    let name = r.decode().map_err(|e| XmlError::Syntax(e.to_string()))?;
                    match name.as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => return Err(XmlError::Entity(other.to_string())),
                    }
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|e| XmlError::Syntax(e.to_string()))?;
                if let Some(top) = stack.last_mut() {
                    top.children.push(Node::CData(text.into_owned()));
                }
            }
            Event::Comment(c) => {
                let text = c.decode().map_err(|e| XmlError::Syntax(e.to_string()))?;
                // XML 1.0 (2.5): no "--" inside a comment, and no "-" before its end.
                // quick-xml does not check it; libvirt's libxml2 refuses it, and the
                // serialiser could not write such a comment back unchanged (found by
                // fuzzing: the round trip changed the tree).
                if text.contains("--") || text.ends_with('-') {
                    return Err(XmlError::Syntax("'--' inside a comment".into()));
                }
                if let Some(top) = stack.last_mut() {
                    top.children.push(Node::Comment(text.into_owned()));
                }
            }
            Event::PI(pi) => {
                if let Some(top) = stack.last_mut() {
                    let raw = String::from_utf8_lossy(&pi.into_inner()).into_owned();
                    top.children.push(Node::Pi(raw));
                }
            }
            Event::Decl(_) => {}
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax(format!(
            "element <{}> is not closed",
            stack.last().map(|e| e.name.as_str()).unwrap_or("")
        )));
    }
    root.ok_or(XmlError::NoRoot)
}

/// Parse and require a root element of the given name.
pub fn parse_root(input: &str, expected: &str) -> Result<Element, XmlError> {
    let root = parse(input)?;
    if root.name != expected {
        return Err(XmlError::WrongRoot {
            expected: expected.into(),
            found: root.name,
        });
    }
    Ok(root)
}

/// An XML name (element or attribute), as XML 1.0 allows it, with every non-ASCII
/// character admitted. quick-xml takes whatever precedes whitespace or `/`: `< />` has an
/// empty name, which we would write back as `</>` (found by fuzzing).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | ':') || !c.is_ascii())
        && chars.all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-') || !c.is_ascii()
        })
}

fn element_from_start(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|e| XmlError::Syntax(e.to_string()))?
        .to_string();
    if !valid_name(&name) {
        return Err(XmlError::Syntax(format!("invalid element name {name:?}")));
    }
    let mut el = Element::new(name);
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Syntax(e.to_string()))?;
        let key = std::str::from_utf8(attr.key.as_ref())
            .map_err(|e| XmlError::Syntax(e.to_string()))?
            .to_string();
        if !valid_name(&key) {
            return Err(XmlError::Syntax(format!("invalid attribute name {key:?}")));
        }
        let raw = std::str::from_utf8(&attr.value).map_err(|e| XmlError::Syntax(e.to_string()))?;
        let value = unescape_attr(raw)?;
        if el.attr(&key).is_some() {
            return Err(XmlError::Syntax(format!("duplicate attribute {key}")));
        }
        el.attrs.push((key, value));
    }
    Ok(el)
}

fn unescape_attr(raw: &str) -> Result<String, XmlError> {
    if !raw.contains('&') {
        return Ok(raw.to_string());
    }
    quick_xml::escape::unescape(raw)
        .map(|c| c.into_owned())
        .map_err(|e| match e {
            quick_xml::escape::EscapeError::UnrecognizedEntity(_, name) => XmlError::Entity(name),
            other => XmlError::Syntax(other.to_string()),
        })
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(top) => {
            if let Some(Node::Text(prev)) = top.children.last_mut() {
                prev.push_str(text);
            } else {
                top.children.push(Node::Text(text.to_string()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::Syntax("text outside the root element".into())),
    }
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, node: Node) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(node);
            Ok(())
        }
        None => match node {
            Node::Element(e) if root.is_none() => {
                *root = Some(e);
                Ok(())
            }
            Node::Element(_) => Err(XmlError::Syntax("more than one root element".into())),
            _ => Ok(()),
        },
    }
}

fn write_element(el: &Element, out: &mut String) {
    out.push('<');
    out.push_str(&el.name);
    for (k, v) in &el.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_into(v, out, true);
        out.push('"');
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for child in &el.children {
        match child {
            Node::Element(e) => write_element(e, out),
            Node::Text(t) => escape_into(t, out, false),
            Node::CData(t) => {
                // A literal "]]>" cannot live inside CDATA; fall back to escaped text.
                if t.contains("]]>") {
                    escape_into(t, out, false);
                } else {
                    out.push_str("<![CDATA[");
                    out.push_str(t);
                    out.push_str("]]>");
                }
            }
            Node::Comment(t) => {
                out.push_str("<!--");
                out.push_str(&t.replace("--", "- -"));
                out.push_str("-->");
            }
            Node::Pi(raw) => {
                out.push_str("<?");
                out.push_str(raw);
                out.push_str("?>");
            }
        }
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

fn escape_into(s: &str, out: &mut String, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attr => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

/// Escape a string for use as XML text (exposed for code that formats small fragments).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(s, &mut out, false);
    out
}

/// An XML text without its layout: every run of whitespace between two tags that holds a
/// line break (indentation) is left out. Two definitions that differ only in how they are
/// indented (libvirt re-indents `<metadata>` on some versions, a definition re-serialised
/// by another tool) give the same result; text content (a description, even one of
/// spaces only on one line) is kept. Linear, no parsing: it runs on every definition
/// uvmm compares.
pub fn without_layout(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(end) = rest.find('>') {
        let (tag, after) = rest.split_at(end + 1);
        out.push_str(tag);
        let ws = after
            .find(|c: char| !c.is_ascii_whitespace())
            .unwrap_or(after.len());
        let (run, next) = after.split_at(ws);
        let between_tags = next.starts_with('<') || next.is_empty();
        if !(between_tags && run.contains('\n')) {
            out.push_str(run);
        }
        rest = next;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_left_out_and_content_kept() {
        let flat = "<domain><name>a</name><metadata><n:notes xmlns:n='u'><n:contact>x</n:contact></n:notes></metadata></domain>";
        // (input, same as `flat`)
        let table = [
            (flat, true),
            ("<domain>\n  <name>a</name>\n  <metadata>\n    <n:notes xmlns:n='u'>\n      <n:contact>x</n:contact>\n    </n:notes>\n  </metadata>\n</domain>\n", true),
            // Re-indented deeper, blank lines, CRLF, tabs.
            ("<domain>\r\n\t<name>a</name>\n\n<metadata>\n          <n:notes xmlns:n='u'>\n<n:contact>x</n:contact></n:notes></metadata></domain>", true),
            // Text content changed: a different definition.
            ("<domain><name>b</name><metadata><n:notes xmlns:n='u'><n:contact>x</n:contact></n:notes></metadata></domain>", false),
            ("<domain><name>a</name><metadata><n:notes xmlns:n='u'><n:contact> x</n:contact></n:notes></metadata></domain>", false),
            ("<domain><name>a </name><metadata><n:notes xmlns:n='u'><n:contact>x</n:contact></n:notes></metadata></domain>", false),
            // An attribute changed.
            ("<domain><name>a</name><metadata><n:notes xmlns:n='v'><n:contact>x</n:contact></n:notes></metadata></domain>", false),
        ];
        let want = without_layout(flat);
        for (xml, same) in table {
            assert_eq!(without_layout(xml) == want, same, "{xml}");
        }
        // Spaces on one line between tags are content (a description of spaces).
        assert_ne!(
            without_layout("<d><description>  </description></d>"),
            without_layout("<d><description></description></d>")
        );
        // A multi-line text keeps its line breaks.
        assert_eq!(
            without_layout("<d><description>one\n two</description></d>"),
            "<d><description>one\n two</description></d>"
        );
        assert_eq!(without_layout(""), "");
        assert_eq!(without_layout("not xml\n"), "not xml\n");
    }

    #[test]
    fn round_trip_keeps_everything() {
        let cases = [
            "<domain type=\"kvm\"><name>a</name></domain>",
            "<domain><!-- c --><name>a &amp; b</name><x:y xmlns:x=\"urn:x\" x:z=\"1\"/></domain>",
            "<a><![CDATA[<raw>]]></a>",
            "<a b=\"&lt;&quot;&amp;\"/>",
            "<a>\n  <b/>\n</a>",
            "<a><?pi data?></a>",
        ];
        for case in cases {
            let tree = parse(case).unwrap_or_else(|e| panic!("{case}: {e}"));
            let again = parse(&tree.to_xml()).unwrap();
            assert_eq!(tree, again, "{case}");
        }
    }

    #[test]
    fn refuses_bad_input() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        type Check = fn(&XmlError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| *e == XmlError::NoRoot),
            ("<a>", |e| matches!(e, XmlError::Syntax(_))),
            ("<a></b>", |e| matches!(e, XmlError::Syntax(_))),
            ("<a/><b/>", |e| matches!(e, XmlError::Syntax(_))),
            ("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", |e| {
                *e == XmlError::Doctype
            }),
            ("<a>&unknown;</a>", |e| matches!(e, XmlError::Entity(_))),
            ("<a b='&zz;'/>", |e| matches!(e, XmlError::Entity(_))),
            ("<a b='1' b='2'/>", |e| matches!(e, XmlError::Syntax(_))),
            ("< />", |e| matches!(e, XmlError::Syntax(_))),
            ("<a>< /></a>", |e| matches!(e, XmlError::Syntax(_))),
            ("<1a/>", |e| matches!(e, XmlError::Syntax(_))),
            ("<a 1b='x'/>", |e| matches!(e, XmlError::Syntax(_))),
            ("<a><!-- x -- y --></a>", |e| {
                matches!(e, XmlError::Syntax(_))
            }),
            ("<a><!-- <!-- nested --></a>", |e| {
                matches!(e, XmlError::Syntax(_))
            }),
            ("<a><!--x---></a>", |e| matches!(e, XmlError::Syntax(_))),
            ("<!-- a -- b --><a/>", |e| matches!(e, XmlError::Syntax(_))),
            ("text", |e| {
                matches!(e, XmlError::Syntax(_) | XmlError::NoRoot)
            }),
            (deep.as_str(), |e| *e == XmlError::TooDeep),
        ];
        for (input, check) in cases {
            let err = parse(input).expect_err(input);
            assert!(check(&err), "{input}: unexpected {err:?}");
        }
        let big = format!("<a>{}</a>", "x".repeat(MAX_XML_BYTES));
        assert_eq!(parse(&big), Err(XmlError::TooLarge));
    }

    #[test]
    fn entities_and_char_refs_resolve() {
        let el = parse("<a t=\"&#65;&amp;\">&lt;&#x42;&gt;</a>").unwrap();
        assert_eq!(el.attr("t"), Some("A&"));
        assert_eq!(el.text(), "<B>");
    }

    #[test]
    fn escaping_never_injects() {
        let mut el = Element::new("description");
        el.set_text("</description><evil/>&");
        el.set_attr("x", "\"><evil/>");
        let xml = el.to_xml();
        let back = parse(&xml).unwrap();
        assert_eq!(back.text(), "</description><evil/>&");
        assert_eq!(back.attr("x"), Some("\"><evil/>"));
        assert_eq!(back.elements().count(), 0);
    }

    #[test]
    fn helpers() {
        let mut el = parse("<a><b><c>x</c></b><b/></a>").unwrap();
        assert_eq!(el.find("b/c").map(|c| c.text()), Some("x".into()));
        assert_eq!(el.children_named("b").count(), 2);
        el.ensure_child("d").set_text("y");
        assert_eq!(el.child_text("d").as_deref(), Some("y"));
        assert_eq!(el.remove_children(|e| e.name == "b"), 2);
        assert_eq!(el.to_xml(), "<a><d>y</d></a>");
        assert_eq!(Element::new("p:q").local_name(), "q");
    }
}
