//! Human-readable byte counts for messages and dumps.
//!
//! Sizes print exactly: in the largest binary unit that divides them
//! ("512 MiB", "12 KiB"), or in bytes when no unit does.

const UNITS: [(u64, &str); 5] = [
    (1 << 50, "PiB"),
    (1 << 40, "TiB"),
    (1 << 30, "GiB"),
    (1 << 20, "MiB"),
    (1 << 10, "KiB"),
];

/// `bytes` in the largest binary unit that represents it exactly.
pub fn format_size(bytes: u64) -> String {
    if bytes != 0 {
        for (unit, name) in UNITS {
            if bytes.is_multiple_of(unit) {
                return format!("{} {name}", bytes / unit);
            }
        }
    }
    if bytes == 1 {
        "1 byte".to_owned()
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::format_size;

    #[test]
    fn sizes_print_exactly() {
        assert_eq!(format_size(0), "0 bytes");
        assert_eq!(format_size(1), "1 byte");
        assert_eq!(format_size(4095), "4095 bytes");
        assert_eq!(format_size(12288), "12 KiB");
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(1535 << 20), "1535 MiB");
        assert_eq!(format_size(3 << 40), "3 TiB");
    }
}
