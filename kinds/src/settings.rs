//! A struct of named settings declared once: name, type, default and documentation of each
//! field, from which [`settings!`](macro@crate::settings) derives the struct, its `Default` and its
//! `PARAMS` list ([`crate::param::Param`]), so that a new field becomes a command-line flag
//! (`--t-cov`) and a sweep key (`t_cov`) without further code.
//!
//! A struct may also be declared as the union of named parts (`part Damping { … }`): each part
//! is a settings struct of its own, from which a smaller configuration is built, and the union
//! holds every field of every part flat, so the flags and keys are the parts' fields, declared
//! once.

/// A part of the settings struct `S` ([`settings!`](macro@crate::settings)'s `part` form):
/// read from it with `From<&S>`, written into it with [`Part::put`].
pub trait Part<S>: for<'a> From<&'a S> {
    /// Sets this part's fields of `into` to its own.
    fn put(self, into: &mut S);
}

/// Declares a settings struct, its `Default` and `PARAMS` from one list of fields. The
/// struct (de)serialises by field name with serde (the calling crate's), every field
/// defaulted and unknown ones refused.
///
/// In the `part` form, each `part Name { fields }` is declared as such a struct too, with
/// [`Part`] and `From` conversions to and from the union, which holds all their fields flat (in
/// declaration order, parts' names nowhere in its keys) and offers `with(part)`.
#[macro_export]
macro_rules! settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $pdoc:literal])+
                part $part:ident {
                    $( $(#[doc = $doc:literal])+ $field:ident: $ty:ty = $default:expr; )+
                }
            )+
        }
    ) => {
        $(
            $crate::settings! {
                $(#[doc = $pdoc])+
                $vis struct $part {
                    $( $(#[doc = $doc])+ $field: $ty = $default; )+
                }
            }

            impl From<&$name> for $part {
                fn from(all: &$name) -> Self {
                    $part { $( $field: all.$field.clone(), )+ }
                }
            }

            impl $crate::settings::Part<$name> for $part {
                fn put(self, into: &mut $name) {
                    $( into.$field = self.$field; )+
                }
            }
        )+

        $crate::settings! {
            $(#[$meta])*
            $vis struct $name {
                $( $( $(#[doc = $doc])+ $field: $ty = $default; )+ )+
            }
        }

        impl $name {
            /// These settings with `part`'s fields set to its values.
            pub fn with<P: $crate::settings::Part<Self>>(mut self, part: P) -> Self {
                part.put(&mut self);
                self
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[doc = $doc:literal])+ $field:ident: $ty:ty = $default:expr; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        $vis struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )+ }
            }
        }

        impl $name {
            /// Every field, in declaration order.
            pub const PARAMS: &'static [$crate::param::Param] = &[$(
                $crate::param::Param {
                    name: stringify!($field),
                    doc: concat!($($doc, "\n"),+),
                    kind: <$ty as $crate::param::ParamValue>::KIND,
                },
            )+];
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::param::Kind;
    use crate::OptimizerKind;

    crate::settings! {
        /// Two settings.
        struct Demo {
            /// A rate.
            rate: f64 = 0.5;
            /// Which optimizer.
            optimizer: OptimizerKind = OptimizerKind::Sgd;
        }
    }

    crate::settings! {
        /// Two parts.
        struct Whole {
            /// The first part.
            part First {
                /// A count.
                count: usize = 3;
            }
            /// The second part.
            part Second {
                /// A rate.
                rate: f64 = 0.5;
                /// A switch.
                on: bool = false;
            }
        }
    }

    #[test]
    fn a_union_of_parts_is_flat_and_converts_both_ways() {
        let names: Vec<&str> = Whole::PARAMS.iter().map(|p| p.name).collect();
        assert_eq!(names, ["count", "rate", "on"]);
        assert_eq!((First::PARAMS.len(), Second::PARAMS.len()), (1, 2));
        let w = Whole::default().with(Second {
            rate: 2.0,
            on: true,
        });
        assert_eq!((w.count, w.rate, w.on), (3, 2.0, true));
        assert_eq!(
            Second::from(&w),
            Second {
                rate: 2.0,
                on: true
            }
        );
        assert_eq!(First::from(&w), First::default());
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"count":3,"rate":2.0,"on":true}"#
        );
    }

    #[test]
    fn params_follow_the_declaration() {
        let names: Vec<&str> = Demo::PARAMS.iter().map(|p| p.name).collect();
        assert_eq!(names, ["rate", "optimizer"]);
        assert!(matches!(Demo::PARAMS[0].kind, Kind::Real));
        assert_eq!(Demo::PARAMS[1].help(), "Which optimizer.");
        let d: Demo = serde_json::from_str(r#"{"optimizer": "adam"}"#).unwrap();
        assert_eq!((d.rate, d.optimizer), (0.5, OptimizerKind::Adam));
        assert!(serde_json::from_str::<Demo>(r#"{"rat": 1}"#).is_err());
    }
}
