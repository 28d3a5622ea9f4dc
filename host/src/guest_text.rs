//! Text a guest chose (a log message, an issue id, an error string, a trap's function name,
//! an operation name), made safe to write into a log line or onto a terminal. One helper for
//! every path: every C0 and C1 control, DEL, the Unicode line and paragraph separators and
//! the format characters (bidi controls, zero-width and other invisible characters) are
//! escaped (`\n`, `\u{202e}`), so a guest can neither start a forged log line nor reorder,
//! hide or disguise what an operator reads.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a log line or a terminal as is: it would start a line, move
/// the cursor, reorder text or be invisible (two ids that look the same).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c, '\u{2028}' | '\u{2029}') // line and paragraph separators
        || is_format(c)
}

/// Unicode's general category Cf (format characters: bidi marks, embeddings, overrides and
/// isolates, zero-width spaces and joiners, the soft hyphen, the byte order mark, tags...),
/// generated from Python's `unicodedata` (Unicode 14.0), with Unicode 15's Egyptian
/// hieroglyph format controls up to U+1343F.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061c}'
            | '\u{06dd}'
            | '\u{070f}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// `text` with every unsafe character escaped; borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// At most `max` characters of `text`, escaped, with `…` when cut.
pub fn shortened(text: &str, max: usize) -> String {
    let mut end = text.len();
    if let Some((at, _)) = text.char_indices().nth(max) {
        end = at;
    }
    let mut short = escape(&text[..end]).into_owned();
    if end < text.len() {
        short.push('…');
    }
    short
}

/// `text` escaped, cut so that the result holds at most `max` characters before its `…`:
/// a bound on what is printed, where [`shortened`] bounds what is taken (each escaped
/// character takes up to ten). An escape is never cut in two.
pub fn escaped_within(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in text.chars() {
        let start = out.len();
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
        // Escapes are ASCII: their bytes are their characters.
        count += if is_unsafe(c) { out.len() - start } else { 1 };
        if count > max {
            out.truncate(start);
            out.push('…');
            break;
        }
    }
    out
}

/// Serialized JSON (compact or pretty) made safe for a terminal: serde_json escapes C0
/// controls, but DEL, C1, the line separators and format characters are valid raw in JSON
/// strings. They can only occur inside strings, so each becomes a `\uXXXX` escape and the
/// text stays the same JSON.
pub fn json_for_terminal(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // Raw C0 characters are never inside strings (serde_json escapes them there): the
        // line breaks and indentation of pretty-printed JSON stay as they are.
        if is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t') {
            // JSON escapes UTF-16 units: a character above U+FFFF is a surrogate pair.
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A guest value as one log field: always in double quotes, with `"` and `\` escaped too, so
/// `monitor=x outcome=ok` inside a value cannot pass for more fields.
#[derive(Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(self.0.len() + 2);
        out.push('"');
        for c in self.0.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if is_unsafe(c) => push_escaped(&mut out, c),
                c => out.push(c),
            }
        }
        out.push('"');
        f.write_str(&out)
    }
}

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_within_bounds_what_is_printed() {
        let bells = "\u{7}".repeat(1_000);
        let short = escaped_within(&bells, 100);
        // 20 escapes of five characters, then the mark; no escape cut in two.
        assert_eq!(short, format!("{}…", "\\u{7}".repeat(20)));
        assert_eq!(escaped_within("abc", 3), "abc");
        assert_eq!(escaped_within("abcd", 3), "abc…");
        assert_eq!(escaped_within("a\nb", 10), "a\\nb");
    }

    #[test]
    fn controls_separators_and_bidi_are_escaped() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO sentinela::audit: outcome=ok\r\u{1b}[2J\u{7}\u{85}\u{2028}\u{202e}\u{2066}";
        let escaped = escape(forged);
        assert!(!escaped.chars().any(is_unsafe), "{escaped}");
        assert!(escaped.contains("\\n2026") && escaped.contains("\\u{1b}[2J"));
        assert!(escaped.contains("\\u{2028}") && escaped.contains("\\u{202e}"));
        assert!(matches!(escape("plain ünïcode ✓"), Cow::Borrowed(_)));
        // Invisible characters: two ids that would look the same do not.
        for invisible in ["\u{200b}", "\u{2060}", "\u{ad}", "\u{feff}", "\u{e0041}"] {
            let id = format!("disk{invisible}-full");
            assert_ne!(escape(&id), "disk-full", "{invisible:?}");
            assert!(!escape(&id).chars().any(is_unsafe));
        }
    }

    #[test]
    fn quoted_values_cannot_pass_for_fields() {
        assert_eq!(
            Quoted("a\" outcome=\"ok\\").to_string(),
            "\"a\\\" outcome=\\\"ok\\\\\""
        );
        assert_eq!(Quoted("l1\nl2").to_string(), "\"l1\\nl2\"");
    }

    #[test]
    fn json_stays_json_without_raw_controls() {
        let value = serde_json::json!({
            "id": "a\u{7f}\u{9b}\u{2028}\u{202e}b\n\u{200b}\u{2060}\u{ad}\u{feff}\u{e0041}"
        });
        let text = json_for_terminal(&value.to_string()).into_owned();
        assert!(!text.chars().any(is_unsafe), "{text}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
        // Pretty-printed: its own line breaks stay, the strings' characters do not.
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let text = json_for_terminal(&pretty).into_owned();
        assert!(text.contains('\n'));
        assert!(!text.chars().any(|c| c != '\n' && is_unsafe(c)), "{text}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
    }

    #[test]
    fn shortening_counts_characters_and_escapes() {
        assert_eq!(shortened("ééééé", 3), "ééé…");
        assert_eq!(shortened("a\nb", 10), "a\\nb");
    }
}
