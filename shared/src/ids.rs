//! Session id rules: 1 to 256 characters from `A-Z a-z 0-9 . _ - : @`.

/// The longest id accepted, in characters (all allowed characters are ASCII).
pub const MAX_ID_LEN: usize = 256;

/// Why an id was refused, as a sentence for the error message.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("id must not be empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "id is {} bytes long; the limit is {MAX_ID_LEN}",
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| !is_id_char(*c)) {
        return Err(format!(
            "id contains {c:?}; allowed are A-Z a-z 0-9 . _ - : @"
        ));
    }
    Ok(())
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character() {
        assert!(validate_id("a").is_ok());
        assert!(validate_id("AZaz09._-:@").is_ok());
        assert!(validate_id(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_foreign_characters() {
        assert!(validate_id("").is_err());
        assert!(validate_id(&"x".repeat(257)).is_err());
        for bad in ["a b", "a/b", "é", "a\n", "a\0", "a+b", "a#", "ü"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
