//! Named choices (optimizer kind, Fisher type, Woodbury mode, dense method, schedule): each
//! enum declares its names once, through `choice!`, and every reader — the command line,
//! sweep files, serde, checkpoints — parses them through [`Choice::parse`].

/// A name that is not one of a [`Choice`]'s values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`; valid choices: {valid}")]
pub struct UnknownChoice {
    /// What was being chosen ("optimizer", "fisher").
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The valid names, comma-separated.
    pub valid: String,
}

/// An enum whose values have stable lower-case names.
pub trait Choice: Sized + Copy + PartialEq + 'static {
    /// What a value is called in messages ("optimizer", "fisher").
    const WHAT: &'static str;
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];

    /// The value's name, as the command line and sweep files spell it.
    fn name(self) -> &'static str;

    /// Every name, in [`Choice::ALL`]'s order.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|c| c.name()).collect()
    }

    /// The value named `name`, or an error that lists the valid names.
    fn parse(name: &str) -> Result<Self, UnknownChoice> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.name() == name)
            .ok_or_else(|| UnknownChoice {
                what: Self::WHAT,
                name: name.to_string(),
                valid: Self::names().join(", "),
            })
    }
}

/// Declares a [`Choice`] enum: its variants with their names, plus `Display`, `FromStr`, serde
/// and [`crate::param::ParamValue`] through the same names.
#[macro_export]
macro_rules! choice {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order help texts list them.
            pub const ALL: &'static [Self] = &[$($name::$variant),+];

            /// The value's name, as the command line and sweep files spell it.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value named `name`, or an error that lists the valid names.
            pub fn parse(name: &str) -> std::result::Result<Self, $crate::UnknownChoice> {
                <$name as $crate::choice::Choice>::parse(name)
            }
        }

        impl $crate::choice::Choice for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = $name::ALL;
            fn name(self) -> &'static str {
                $name::name(self)
            }
        }

        impl $crate::param::ParamValue for $name {
            const KIND: $crate::param::Kind =
                $crate::param::Kind::Choice(<$name as $crate::choice::Choice>::names);
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::choice::Choice::name(*self))
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownChoice;
            fn from_str(s: &str) -> std::result::Result<Self, $crate::UnknownChoice> {
                <$name as $crate::choice::Choice>::parse(s)
            }
        }

        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str($crate::choice::Choice::name(*self))
            }
        }

        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as $crate::serde::Deserialize>::deserialize(d)?;
                <$name as $crate::choice::Choice>::parse(&s).map_err($crate::serde::de::Error::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::choice! {
        enum Colour as "colour" {
            Red = "red",
            DarkBlue = "dark-blue",
        }
    }

    #[test]
    fn names_round_trip_through_parse_display_and_serde() {
        for c in Colour::ALL {
            assert_eq!(Colour::parse(c.name()).unwrap(), *c);
            assert_eq!(c.to_string(), c.name());
            let js = serde_json::to_string(c).unwrap();
            assert_eq!(serde_json::from_str::<Colour>(&js).unwrap(), *c);
        }
        assert_eq!(Colour::names(), ["red", "dark-blue"]);
    }

    #[test]
    fn an_unknown_name_lists_the_valid_ones() {
        let e = Colour::parse("blue").unwrap_err().to_string();
        assert!(e.contains("colour") && e.contains("`blue`") && e.contains("red, dark-blue"));
        let e = serde_json::from_str::<Colour>("\"blue\"").unwrap_err();
        assert!(e.to_string().contains("red, dark-blue"), "{e}");
    }
}
