//! The sliding-window geometry shared by convolution and pooling.

/// A square-stride, square-padding window over an `[N, H, W, C]` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Step between windows, in both directions.
    pub stride: usize,
    /// Zero padding on each side, in both directions.
    pub padding: usize,
}

impl Window {
    /// The usual max-pooling window: 2×2, stride 2 (VGG's).
    pub const POOL_2X2: Window = Window {
        kh: 2,
        kw: 2,
        stride: 2,
        padding: 0,
    };

    /// Output height and width, or `None` when the window does not fit the padded input.
    pub fn output(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if self.stride == 0 || hp < self.kh || wp < self.kw {
            return None;
        }
        Some((
            (hp - self.kh) / self.stride + 1,
            (wp - self.kw) / self.stride + 1,
        ))
    }

    /// The input coordinate of window offset `k` at output coordinate `o` along an axis of
    /// `len` (height or width), or `None` where the window covers padding.
    #[inline]
    pub fn source(&self, o: usize, k: usize, len: usize) -> Option<usize> {
        let i = (o * self.stride + k) as isize - self.padding as isize;
        (i >= 0 && (i as usize) < len).then_some(i as usize)
    }
}

/// One convolution call: NHWC input `[n, h, w, c]` under `win`, weight `[c_out, k]` with
/// `k = kh·kw·c` (im2col column order), output `[n, ho, wo, c_out]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub win: Window,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub ho: usize,
    pub wo: usize,
    /// Patch length `kh·kw·c`.
    pub k: usize,
    pub c_out: usize,
}

impl ConvGeom {
    /// The geometry of `win` over an input of `dims` with a weight of `wdims`, or an error
    /// saying which does not fit.
    pub fn new(
        win: Window,
        (n, h, w, c): (usize, usize, usize, usize),
        wdims: &[usize],
    ) -> candle_core::Result<Self> {
        let Some((ho, wo)) = win.output(h, w) else {
            candle_core::bail!("conv2d: window {win:?} does not fit a {h}x{w} input");
        };
        let k = win.kh * win.kw * c;
        match *wdims {
            [c_out, kk] if kk == k && k > 0 && c_out > 0 => Ok(ConvGeom {
                win,
                n,
                h,
                w,
                c,
                ho,
                wo,
                k,
                c_out,
            }),
            _ => candle_core::bail!(
                "conv2d: weight {wdims:?} does not match {c}-channel input with {win:?}"
            ),
        }
    }

    /// The input's dims `(n, h, w, c)`.
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (self.n, self.h, self.w, self.c)
    }

    /// Output pixels, `n·ho·wo`.
    pub fn pixels(&self) -> usize {
        self.n * self.ho * self.wo
    }
}
