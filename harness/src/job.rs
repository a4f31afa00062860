//! How `skfac` finds the other processes of a data-parallel job: launched by `mpirun`, it
//! joins MPI (cargo feature `mpi`, over the system's Open MPI); otherwise it is alone.

use std::sync::Arc;

use optimizers::{Communicator, Local};

/// The job this process belongs to. Holding it keeps MPI initialised; dropping it (at the
/// end of `main`) finalises MPI.
pub struct Job {
    pub comm: Arc<dyn Communicator>,
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

impl Job {
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// One process, no MPI.
    pub fn local() -> Job {
        Job {
            comm: Arc::new(Local),
            #[cfg(feature = "mpi")]
            _universe: None,
        }
    }
}

/// The process count a launcher (`mpirun` of Open MPI, MPICH's Hydra, PMIx) announced in the
/// environment, if any.
pub fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// Processes of this job on this machine, as the launcher announced them (1 alone).
pub fn local_size() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
        .unwrap_or(1)
}

/// This process's index among the job's processes on this machine (0 alone): its GPU under
/// `--device cuda`.
pub fn local_rank() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
        .unwrap_or(0)
}

/// Joins the job `mpirun` started, or returns a one-process job when not launched by it.
pub fn join() -> anyhow::Result<Job> {
    match launched_size() {
        None | Some(1) => Ok(Job::local()),
        Some(n) => join_mpi(n),
    }
}

#[cfg(not(feature = "mpi"))]
fn join_mpi(n: usize) -> anyhow::Result<Job> {
    anyhow::bail!(
        "launched as one of {n} MPI processes, but this skfac was built without MPI: \
         rebuild with `cargo build --release -p harness --features mpi` (needs libopenmpi-dev \
         and libclang-dev)"
    )
}

#[cfg(feature = "mpi")]
fn join_mpi(_n: usize) -> anyhow::Result<Job> {
    use mpi::Threading;
    // Training steps run on a rayon worker (`threads::on_pool`), not on the thread that
    // initialised MPI; one thread at a time calls MPI, which is the serialized level.
    let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
        .ok_or_else(|| anyhow::anyhow!("MPI was initialised twice"))?;
    anyhow::ensure!(
        matches!(level, Threading::Serialized | Threading::Multiple),
        "this MPI library offers thread level {level:?}; skfac needs MPI_THREAD_SERIALIZED"
    );
    let comm = Arc::new(mpi_comm::MpiComm::new(universe.world()));
    Ok(Job {
        comm,
        _universe: Some(universe),
    })
}

#[cfg(feature = "mpi")]
mod mpi_comm {
    use std::sync::Mutex;
    use std::time::Instant;

    use mpi::collective::SystemOperation;
    use mpi::datatype::PartitionMut;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::Communicator as _;
    use mpi::traits::*;
    use mpi::Count;
    use optimizers::{Channel, Communicator, Traffic};

    /// `MPI_COMM_WORLD` with per-channel accounting of time and bytes.
    pub struct MpiComm {
        world: SimpleCommunicator,
        traffic: Mutex<Traffic>,
    }

    // SAFETY: MPI is initialised at the serialized thread level, and collectives are called
    // by one thread at a time: the thread running the training step or the evaluation (a
    // rayon worker, see `threads::on_pool`); the kernels' parallel tasks never communicate.
    unsafe impl Send for MpiComm {}
    unsafe impl Sync for MpiComm {}

    impl MpiComm {
        pub fn new(world: SimpleCommunicator) -> Self {
            MpiComm {
                world,
                traffic: Mutex::new(Traffic::default()),
            }
        }

        /// Runs `call` after a barrier, so that the time waiting for the slowest process
        /// (load imbalance) is told apart from the collective itself, and accounts both.
        fn timed<R>(&self, channel: Channel, bytes: usize, call: impl FnOnce() -> R) -> R {
            let start = Instant::now();
            self.world.barrier();
            let wait = start.elapsed().as_secs_f64();
            let out = call();
            let secs = start.elapsed().as_secs_f64();
            self.traffic
                .lock()
                .expect("traffic lock")
                .record(channel, secs, wait, bytes as u64);
            out
        }

        fn reduce<T: Equivalence + Copy + Default>(&self, buf: &mut [T]) {
            let mut out = vec![T::default(); buf.len()];
            self.world
                .all_reduce_into(&buf[..], &mut out[..], SystemOperation::sum());
            buf.copy_from_slice(&out);
        }

        fn gather<T: Equivalence + Copy + Default>(&self, mine: &[T]) -> Vec<T> {
            let mut counts = vec![0 as Count; self.world.size() as usize];
            self.world
                .all_gather_into(&(mine.len() as Count), &mut counts[..]);
            let displs: Vec<Count> = counts
                .iter()
                .scan(0, |acc, &c| {
                    let d = *acc;
                    *acc += c;
                    Some(d)
                })
                .collect();
            let total = counts.iter().sum::<Count>() as usize;
            let mut all = vec![T::default(); total];
            {
                let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
                self.world.all_gather_varcount_into(mine, &mut part);
            }
            all
        }
    }

    impl Communicator for MpiComm {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }

        fn size(&self) -> usize {
            self.world.size() as usize
        }

        fn all_reduce_sum_f32(&self, buf: &mut [f32], channel: Channel) {
            self.timed(channel, std::mem::size_of_val(buf), || self.reduce(buf))
        }

        fn all_reduce_sum_f64(&self, buf: &mut [f64], channel: Channel) {
            self.timed(channel, std::mem::size_of_val(buf), || self.reduce(buf))
        }

        fn all_gather_f32(&self, mine: &[f32], channel: Channel) -> Vec<f32> {
            self.timed(channel, std::mem::size_of_val(mine), || self.gather(mine))
        }

        fn all_gather_f64(&self, mine: &[f64], channel: Channel) -> Vec<f64> {
            self.timed(channel, std::mem::size_of_val(mine), || self.gather(mine))
        }

        fn take_traffic(&self) -> Traffic {
            std::mem::take(&mut *self.traffic.lock().expect("traffic lock"))
        }

        fn abort(&self, code: i32) -> ! {
            mpi::traits::Communicator::abort(&self.world, code)
        }
    }
}
