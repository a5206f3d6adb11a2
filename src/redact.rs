//! Secrets kept out of what nofx records: text that comes from outside (a provider's error,
//! an MCP server's answer or stderr) has the credentials nofx sent it taken out before it
//! reaches an event, an error or the log, and is bounded in size.

/// The text put where a secret was.
pub(crate) const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not looked for: too many false matches, too little secret.
const MIN_SECRET: usize = 8;

/// `text` with every occurrence of each of `secrets` replaced by [`REDACTED`].
pub(crate) fn redacted<S: AsRef<str>>(mut text: String, secrets: &[S]) -> String {
    for s in secrets {
        let s = s.as_ref();
        if s.len() >= MIN_SECRET && text.contains(s) {
            text = text.replace(s, REDACTED);
        }
    }
    text
}

/// `text` cut to at most `max` bytes (on a character boundary), saying how much was cut.
pub(crate) fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("… ({more} bytes more)"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_short_ones_left_and_text_is_cut_on_a_boundary() {
        let t = redacted(
            "key sk-abcdefgh12 and sk-abcdefgh12".into(),
            &["sk-abcdefgh12", "1"],
        );
        assert_eq!(t, "key [redacted] and [redacted]");
        assert_eq!(bounded("ééé".into(), 3), "é… (4 bytes more)");
        assert_eq!(bounded("short".into(), 10), "short");
    }
}
