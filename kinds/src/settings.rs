//! A struct of named settings declared once: name, type, default and documentation of each
//! field, from which [`settings!`](macro@crate::settings) derives the struct, its `Default` and its
//! `PARAMS` list ([`crate::param::Param`]), so that a new field becomes a command-line flag
//! (`--t-cov`) and a sweep key (`t_cov`) without further code.

/// Declares a settings struct, its `Default` and `PARAMS` from one list of fields. The
/// struct (de)serialises by field name with serde (the calling crate's), every field
/// defaulted and unknown ones refused.
#[macro_export]
macro_rules! settings {
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
