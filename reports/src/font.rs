//! The one font every plot uses, bundled so plots look the same on any machine and need no
//! system font packages (DejaVu Sans, Bitstream Vera licence: assets/DejaVuSans-LICENSE.txt).

use std::sync::Once;

use plotters::style::FontStyle;

/// The family name plots ask for.
pub const FAMILY: &str = "sans-serif";

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled font under [`FAMILY`]; cheap to call again.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a font known at compile time: failing to parse them is a build defect.
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled DejaVuSans.ttf does not parse"));
    });
}
