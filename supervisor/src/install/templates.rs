//! The service files in `launchd/`, embedded at build time, and the
//! escaping their values need: `{{NAME}}` placeholders replaced in one
//! pass, so a value that itself contains `{{…}}` is never expanded again.

/// The launchd agent.
pub const PLIST: &str = include_str!("../../../launchd/dev.second-brain.supervisor.plist");

/// The systemd user unit.
pub const UNIT: &str = include_str!("../../../launchd/second-brain.service");

/// Replaces every `{{NAME}}` in `template` with its value from `values`
/// (already escaped for the file's syntax). A placeholder with no value is
/// an error naming it.
pub fn fill(template: &str, values: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed placeholder near {:?}", &rest[start..]))?;
        let name = &after[..end];
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                format!("the template has a placeholder {{{{{name}}}}} with no value")
            })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Text as XML character data. Control characters other than tab,
/// newline and carriage return cannot appear in XML 1.0 at all.
pub fn xml_escape(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {
                return Err(format!(
                    "{value:?} holds a control character that a plist cannot hold"
                ))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// One word of a systemd setting, double-quoted: `\` and `"` escaped, C
/// escapes for control characters, and `%` doubled so that it is not read
/// as a specifier. `$` stays: `Environment=` does not expand it, nor does
/// `ExecStart=` in the program's path.
pub fn systemd_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The text of XML character data written by [`xml_escape`] (and the
/// numeric references a plist editor may write).
pub fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find(';') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let entity = &after[..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The words of a systemd setting's value: double-quoted words as
/// [`systemd_quote`] writes them (escapes undone, `%%` read as `%`), or
/// bare words split at spaces.
pub fn systemd_words(value: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = value.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        let quoted = c == '"';
        if quoted {
            chars.next();
        }
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err(format!("an unclosed quote in {value:?}"));
                }
                break;
            };
            match c {
                '"' if quoted => break,
                c if c.is_whitespace() && !quoted => break,
                '%' => {
                    if chars.peek() == Some(&'%') {
                        chars.next();
                    }
                    word.push('%');
                }
                '\\' => match chars.next() {
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some('r') => word.push('\r'),
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).collect();
                        let byte = u8::from_str_radix(&hex, 16)
                            .map_err(|_| format!("a bad \\x escape in {value:?}"))?;
                        word.push(char::from(byte));
                    }
                    Some(other) => word.push(other),
                    None => return Err(format!("a lone backslash at the end of {value:?}")),
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_each_placeholder_once_and_never_expands_values() {
        let out = fill("a={{A}} b={{B}} a={{A}}", &[("A", "{{B}}"), ("B", "2")]).unwrap();
        assert_eq!(out, "a={{B}} b=2 a={{B}}");
        assert_eq!(fill("no placeholders", &[]).unwrap(), "no placeholders");
    }

    #[test]
    fn an_unknown_or_unclosed_placeholder_is_an_error() {
        let e = fill("x {{MISSING}} y", &[("A", "1")]).unwrap_err();
        assert!(e.contains("{{MISSING}}"), "{e}");
        assert!(fill("x {{OPEN", &[]).is_err());
    }

    #[test]
    fn xml_values_are_escaped() {
        assert_eq!(
            xml_escape(r#"/a b/<c>&"d"'e'"#).unwrap(),
            "/a b/&lt;c&gt;&amp;&quot;d&quot;&apos;e&apos;"
        );
        assert_eq!(xml_escape("tab\there").unwrap(), "tab\there");
        assert!(xml_escape("bell\u{7}").is_err());
    }

    #[test]
    fn systemd_words_are_quoted() {
        assert_eq!(systemd_quote("/usr/bin:/bin"), r#""/usr/bin:/bin""#);
        assert_eq!(
            systemd_quote(r#"a "b" \c 100% $HOME"#),
            r#""a \"b\" \\c 100%% $HOME""#
        );
        assert_eq!(systemd_quote("line\nnext\u{1}"), r#""line\nnext\x01""#);
    }

    #[test]
    fn the_embedded_templates_name_only_known_placeholders() {
        let plist_names = [
            "LABEL",
            "SUPERVISOR",
            "STOP_BUDGET_SECS",
            "EXIT_TIMEOUT_SECS",
            "OPEN_FILES",
            "OUTPUT_PATH",
            "ENVIRONMENT",
        ];
        let unit_names = [
            "UNIT_NAME",
            "EXEC_START",
            "ENVIRONMENT",
            "STOP_BUDGET_SECS",
            "EXIT_TIMEOUT_SECS",
        ];
        for (template, names) in [(PLIST, &plist_names[..]), (UNIT, &unit_names[..])] {
            let values: Vec<(&str, &str)> = names.iter().map(|n| (*n, "v")).collect();
            let filled = fill(template, &values).expect("every placeholder has a value");
            assert!(!filled.contains("{{"), "{filled}");
            // Each name is used: none is left over from an older template.
            for n in names {
                assert!(template.contains(&format!("{{{{{n}}}}}")), "{n} unused");
            }
        }
    }

    #[test]
    fn what_is_escaped_reads_back() {
        for value in [r#"/a b/<c>&"d"'e'"#, "plain", "tab\there"] {
            assert_eq!(xml_unescape(&xml_escape(value).unwrap()), value);
        }
        assert_eq!(xml_unescape("&#x41;&#66;&unknown; & x"), "AB&unknown; & x");
        for value in [r#"a "b" \c 100% $HOME"#, "line\nnext\u{1}", "/usr/bin:/bin"] {
            assert_eq!(systemd_words(&systemd_quote(value)).unwrap(), [value]);
        }
        assert_eq!(
            systemd_words(r#""/a b/supervisor" run"#).unwrap(),
            ["/a b/supervisor", "run"]
        );
        assert!(systemd_words(r#""open"#).is_err());
    }
}
