//! How hdrtrace writes a control character wherever a terminal or a log
//! reader sees its text (log lines, the text tree): `\n`, `\r`, `\t`; other
//! C0 controls and DEL as `\x1b`; C1 controls (U+0080 to U+009F) as
//! `\u{9b}`. One form everywhere, so a hostile model id reads the same in a
//! log line and in a captured request's tree, and no input can move a
//! cursor, recolour a terminal or start a line.

/// The escape written for one control character.
pub(crate) struct Escape {
    bytes: [u8; 6],
    len: u8,
}

impl Escape {
    pub(crate) fn as_str(&self) -> &str {
        // The bytes are ASCII: a backslash, letters, braces and hex digits.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The escape of `c`, a control character (one [`first_control`]
    /// found; [`control`] for any character).
    pub(crate) fn of(c: char) -> Escape {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        debug_assert!(c.is_control(), "{c:?} is not a control character");
        let code = u32::from(c) as u8;
        let hex = |shift: u8| HEX[usize::from(code >> shift & 0xf)];
        let mut bytes = [0u8; 6];
        let len = match c {
            '\n' | '\r' | '\t' => {
                let letter = match c {
                    '\n' => b'n',
                    '\r' => b'r',
                    _ => b't',
                };
                bytes[..2].copy_from_slice(&[b'\\', letter]);
                2
            }
            '\0'..='\u{1f}' | '\u{7f}' => {
                bytes[..4].copy_from_slice(&[b'\\', b'x', hex(4), hex(0)]);
                4
            }
            _ => {
                bytes.copy_from_slice(&[b'\\', b'u', b'{', hex(4), hex(0), b'}']);
                6
            }
        };
        Escape { bytes, len }
    }
}

/// `c`'s escape when it is a control character (`char::is_control`), else
/// `None`.
pub(crate) fn control(c: char) -> Option<Escape> {
    c.is_control().then(|| Escape::of(c))
}

/// The first control character of `s` (those `char::is_control` names:
/// U+0000 to U+001F, DEL, U+0080 to U+009F) and the byte where it starts.
/// A byte scan that decodes nothing: C0 controls and DEL are single bytes,
/// a C1 control is 0xC2 (only ever a lead byte) then 0x80 to 0x9F, and no
/// other character is a control.
#[inline]
pub(crate) fn first_control(s: &str) -> Option<(usize, char)> {
    let b = s.as_bytes();
    b.iter().enumerate().find_map(|(i, &c)| match c {
        0..=0x1f | 0x7f => Some((i, char::from(c))),
        0xc2 => match b.get(i + 1) {
            Some(&next @ 0x80..=0x9f) => Some((i, char::from(next))),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_kind_of_control_has_its_form() {
        let e = |c| super::control(c).map(|e| e.as_str().to_string());
        assert_eq!(e('\n').as_deref(), Some("\\n"));
        assert_eq!(e('\t').as_deref(), Some("\\t"));
        assert_eq!(e('\0').as_deref(), Some("\\x00"));
        assert_eq!(e('\u{1b}').as_deref(), Some("\\x1b"));
        assert_eq!(e('\u{7f}').as_deref(), Some("\\x7f"));
        assert_eq!(e('\u{9b}').as_deref(), Some("\\u{9b}"));
        assert_eq!(e('é'), None);
        assert_eq!(e('\u{a0}'), None);
    }

    /// `first_control` finds exactly the characters `char::is_control`
    /// names, at the byte they start.
    #[test]
    fn first_control_is_char_is_control() {
        let mut buf = *b"ab\0\0\0\0";
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let len = c.encode_utf8(&mut buf[2..]).len();
            let s = std::str::from_utf8(&buf[..2 + len]).unwrap();
            let want = c.is_control().then_some(c);
            assert_eq!(super::first_control(&s[2..]), want.map(|c| (0, c)), "{c:?}");
            assert_eq!(super::first_control(s), want.map(|c| (2, c)), "{c:?}");
        }
        assert_eq!(
            super::first_control("é\u{a0}x\u{85}\n"),
            Some((5, '\u{85}'))
        );
    }
}
