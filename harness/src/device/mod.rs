//! Where a run computes: `--device cpu|cuda[:N]` (the sweep key `device`). CUDA needs a build
//! with the `cuda` feature (`just build-cuda`) and a machine with an NVIDIA driver; asking for
//! it otherwise is an error that says which is missing.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use candle_core::Device;

#[cfg(feature = "cuda")]
mod cuda;

/// A device as the user names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU, with `--threads` threads.
    #[default]
    Cpu,
    /// GPU `N` (`cuda:N`), or with `cuda` alone the one [`DeviceSpec::ordinal`] gives the
    /// process's slot, so that each process of a data-parallel job (or each `--jobs` worker)
    /// on one machine takes its own GPU.
    Cuda(Option<usize>),
}

/// What `--device` accepts, for its errors and help.
pub const DEVICE_CHOICES: &str =
    "cpu, cuda (GPU 0, or one GPU per MPI process or --jobs worker), cuda:N";

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(None)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(|i| DeviceSpec::Cuda(Some(i)))
                .ok_or_else(|| format!("unknown device `{s}`; valid choices: {DEVICE_CHOICES}")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(None) => write!(f, "cuda"),
            DeviceSpec::Cuda(Some(i)) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The GPU index the process in `slot` takes on a machine with `gpus` GPUs: `N` for
    /// `cuda:N`; for `cuda`, `slot` modulo `gpus`, so that processes side by side (the local
    /// MPI ranks, a sweep's `--jobs` workers) take a GPU each, and a process a launcher shows
    /// only its own GPU takes that one.
    pub fn ordinal(self, slot: usize, gpus: usize) -> Option<usize> {
        match self {
            DeviceSpec::Cpu => None,
            DeviceSpec::Cuda(Some(i)) => Some(i),
            DeviceSpec::Cuda(None) => Some(slot % gpus.max(1)),
        }
    }

    /// Opens the device for this process, whose slot among those side by side on this
    /// machine is its local MPI rank (0 when alone).
    ///
    /// # Errors
    ///
    /// As [`DeviceSpec::open_slot`].
    pub fn open(self) -> Result<Device> {
        self.open_slot(crate::job::local_rank())
    }

    /// Opens the device for the process in `slot` (for `cuda`, the GPU
    /// [`DeviceSpec::ordinal`] gives it).
    ///
    /// # Errors
    ///
    /// For CUDA in a build without the `cuda` feature, on a machine without an NVIDIA driver
    /// or NVIDIA's libraries, or with no GPU of that index; each message says what to do.
    #[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
    pub fn open_slot(self, slot: usize) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(_) => cuda::open(self, slot),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => anyhow::bail!(
                "--device {self}: this skfac was built without CUDA; build it with `just \
                 build-cuda` (cargo's `cuda` feature, toolkit from scripts/setup-cuda.sh), or \
                 use --device cpu"
            ),
        }
    }
}

/// How the store and reports name `device`: `cpu`, or `cuda:N (GPU name)`.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => cuda::describe(d),
        #[allow(unreachable_patterns)]
        other => format!("{:?}", other.location()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(None)),
            ("cuda:3", DeviceSpec::Cuda(Some(3))),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
            assert_eq!(d.to_string(), s);
        }
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU"] {
            let e = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(e.contains("valid choices: cpu, cuda"), "{e}");
        }
    }

    #[test]
    fn cuda_takes_the_local_rank_unless_numbered() {
        assert_eq!(DeviceSpec::Cuda(None).ordinal(2, 4), Some(2));
        // One GPU visible to each process: every rank takes GPU 0.
        assert_eq!(DeviceSpec::Cuda(None).ordinal(3, 1), Some(0));
        assert_eq!(DeviceSpec::Cuda(Some(1)).ordinal(2, 4), Some(1));
        assert_eq!(DeviceSpec::Cpu.ordinal(2, 4), None);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_in_a_cpu_build_says_how_to_get_it() {
        let e = DeviceSpec::Cuda(Some(0)).open().unwrap_err().to_string();
        assert!(
            e.contains("--device cuda:0") && e.contains("just build-cuda"),
            "{e}"
        );
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        assert_eq!(describe(&Device::Cpu), "cpu");
    }
}
