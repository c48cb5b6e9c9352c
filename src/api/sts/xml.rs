//! The XML of STS responses: the success envelope (`<OpResponse xmlns=...><OpResult>...
//! </OpResult><ResponseMetadata><RequestId>...`) and the error envelope (`<ErrorResponse>
//! <Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`).
//!
//! Every text value goes through [`escape_into`]: markup characters become entities, and
//! characters XML 1.0 cannot carry at all (most C0 controls, unpaired surrogates cannot occur
//! in Rust strings, U+FFFE/U+FFFF) become U+FFFD, so that a value echoed from a request (a
//! session name in a validation message) can never break or inject into the document.

/// The STS namespace (API version 2011-06-15).
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Appends `text` to `out`, escaped for element content and attribute values.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept as a character reference: a literal CR would be normalized away by parsers.
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

/// XML 1.0 `Char` (without the whitespace controls handled by the caller).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Writes one document: elements and escaped text.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// `<tag>`.
    pub fn start(&mut self, tag: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `</tag>`.
    pub fn end(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `<tag>text</tag>`, the text escaped.
    pub fn element(&mut self, tag: &str, text: &str) -> &mut Self {
        self.start(tag);
        escape_into(&mut self.out, text);
        self.end(tag)
    }

    /// `<tag>text</tag>` when there is a text.
    pub fn optional(&mut self, tag: &str, text: Option<&str>) -> &mut Self {
        if let Some(text) = text {
            self.element(tag, text);
        }
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The success document of `action`: `result` writes the members of `<{action}Result>`.
pub fn success(action: &str, request_id: &str, result: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    w.out
        .push_str(&format!("<{action}Response xmlns=\"{NAMESPACE}\">"));
    w.start(&format!("{action}Result"));
    result(&mut w);
    w.end(&format!("{action}Result"))
        .start("ResponseMetadata")
        .element("RequestId", request_id)
        .end("ResponseMetadata")
        .end(&format!("{action}Response"));
    w.finish()
}

/// The error document.
pub fn error(fault: &str, code: &str, message: &str, request_id: &str) -> String {
    let mut w = XmlWriter::new();
    w.out
        .push_str(&format!("<ErrorResponse xmlns=\"{NAMESPACE}\">"));
    w.start("Error")
        .element("Type", fault)
        .element("Code", code)
        .element("Message", message)
        .end("Error")
        .element("RequestId", request_id)
        .end("ErrorResponse");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_replaces_what_xml_cannot_carry() {
        let mut out = String::new();
        escape_into(&mut out, "a<b>&\"c'\r\n\t\u{1}\u{FFFE}é😀");
        assert_eq!(
            out,
            "a&lt;b&gt;&amp;&quot;c&apos;&#xD;\n\t\u{FFFD}\u{FFFD}é😀"
        );
    }

    #[test]
    fn envelopes() {
        let doc = success("GetCallerIdentity", "rid-1", |w| {
            w.element("Arn", "arn:aws:iam::111122223333:user/a&b")
                .optional("UserId", None)
                .optional("Account", Some("111122223333"));
        });
        assert_eq!(
            doc,
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/a&amp;b</Arn>\
             <Account>111122223333</Account></GetCallerIdentityResult>\
             <ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata>\
             </GetCallerIdentityResponse>"
        );
        assert_eq!(
            error("Sender", "AccessDenied", "no <way>", "rid-2"),
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>AccessDenied</Code><Message>no &lt;way&gt;</Message>\
             </Error><RequestId>rid-2</RequestId></ErrorResponse>"
        );
    }
}
